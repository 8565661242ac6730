from mctformer.logs import redirect_to_log
from mctformer.stages.psa import random_walk_stage

with redirect_to_log(snakemake.log[0]):
    random_walk_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root,
        map_dir=snakemake.input.maps,
        checkpoint=snakemake.input.checkpoint,
        best_json=snakemake.input.best[0] if snakemake.input.best else None,
        out_dir=snakemake.output[0],
        threads=snakemake.threads,
    )
