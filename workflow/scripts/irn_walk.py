from mctformer.logs import redirect_to_log
from mctformer.stages.irn import irn_walk_stage

with redirect_to_log(snakemake.log[0]):
    irn_walk_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root,
        map_dir=snakemake.input.maps,
        checkpoint=snakemake.input.checkpoint,
        out_dir=snakemake.output[0],
        threads=snakemake.threads,
    )
