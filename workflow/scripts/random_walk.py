from mctformer.logs import redirect_to_log
from mctformer.stages import random_walk_stage

with redirect_to_log(snakemake.log[0]):
    random_walk_stage(
        snakemake.params.root,
        snakemake.params.layout,
        snakemake.params.classes,
        snakemake.params.palette,
        snakemake.params.splits,
        snakemake.input.maps,
        snakemake.input.checkpoint,
        snakemake.input.best[0] if snakemake.input.best else None,
        snakemake.params.psa,
        snakemake.params.affinity,
        device=snakemake.params.device,
        out_dir=snakemake.output[0],
        threads=snakemake.threads,
    )
