from mctformer.logs import redirect_to_log
from mctformer.stages.psa import DatasetRef, Placement, train_affinity_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    placement, keys = Placement.take(keys)
    train_affinity_stage(
        **keys,
        dataset=dataset,
        placement=placement,
        resume=snakemake.params.resume,
        label_dir=snakemake.input.labels,
        checkpoint=snakemake.output.checkpoint,
        log_csv=snakemake.output.log_csv,
        threads=snakemake.threads,
    )
