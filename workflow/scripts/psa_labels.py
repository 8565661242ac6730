from mctformer.logs import redirect_to_log
from mctformer.stages import psa_labels_stage

with redirect_to_log(snakemake.log[0]):
    psa_labels_stage(
        snakemake.params.root,
        snakemake.params.layout,
        snakemake.params.classes,
        snakemake.params.palette,
        snakemake.params.split,
        snakemake.input.maps,
        snakemake.params.settings,
        out_dir=snakemake.output.labels,
        stats_path=snakemake.output.stats,
        workers=snakemake.threads,
        grid_labels=snakemake.params.grid_labels,
    )
