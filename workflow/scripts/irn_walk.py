from mctformer.logs import redirect_to_log
from mctformer.stages.irn import DatasetRef, Placement, Shard, irn_walk_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    placement, keys = Placement.take(keys)
    irn_walk_stage(
        **keys,
        dataset=dataset,
        placement=placement,
        map_dir=snakemake.input.maps,
        checkpoint=snakemake.input.checkpoint,
        out_dir=snakemake.output[0],
        threads=snakemake.threads,
        shard=Shard.parse(snakemake.wildcards.get("shard")),  # resources.rules.<rule>.shards > 1
    )
