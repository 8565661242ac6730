from mctformer.logs import redirect_to_log
from mctformer.stages import submission_stage

with redirect_to_log(snakemake.log[0]):
    submission_stage(
        snakemake.params.root,
        snakemake.params.layout,
        snakemake.params.classes,
        snakemake.params.palette,
        snakemake.params.split,
        snakemake.input.checkpoint,
        snakemake.params.settings,
        device=snakemake.params.device,
        out_dir=snakemake.output.folder,
        tarball=snakemake.output.tarball,
        threads=snakemake.threads,
    )
