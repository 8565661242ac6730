from mctformer.logs import redirect_to_log
from mctformer.stages.psa import DatasetRef, Placement, Shard, WalkSettings, random_walk_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    placement, keys = Placement.take(keys)
    walk, keys = WalkSettings.take(keys)
    random_walk_stage(
        **keys,
        dataset=dataset,
        placement=placement,
        walk=walk,
        map_dir=snakemake.input.maps,
        checkpoint=snakemake.input.checkpoint,
        best_json=snakemake.input.best[0] if snakemake.input.best else None,
        out_dir=snakemake.output[0],
        threads=snakemake.threads,
        shard=Shard.parse(snakemake.wildcards.get("shard")),  # resources.rules.<rule>.shards > 1
    )
