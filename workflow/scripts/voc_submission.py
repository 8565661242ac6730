from mctformer.logs import redirect_to_log
from mctformer.stages.deeplab import DatasetRef, Placement, Shard, submission_stage

# guarded: on CUDA the CRF pool starts by forkserver, whose workers import this script again
if __name__ == "__main__":
    with redirect_to_log(snakemake.log[0]):
        dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
        placement, keys = Placement.take(keys)
        submission_stage(
            **keys,
            dataset=dataset,
            placement=placement,
            checkpoint=snakemake.input.checkpoint,
            out_dir=snakemake.output.folder,
            tarball=snakemake.output.get("tarball"),  # none in a shard: the gather packs it
            threads=snakemake.threads,
            shard=Shard.parse(snakemake.wildcards.get("shard")),  # resources.rules.<rule>.shards > 1
        )
