from mctformer.logs import redirect_to_log
from mctformer.stages.irn import DatasetRef, Shard, ir_labels_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    ir_labels_stage(
        **keys,
        dataset=dataset,
        map_dir=snakemake.input.maps,
        out_dir=snakemake.output.labels,
        stats_path=snakemake.output.stats,
        threads=snakemake.threads,
        shard=Shard.parse(snakemake.wildcards.get("shard")),  # resources.rules.<rule>.shards > 1
    )
