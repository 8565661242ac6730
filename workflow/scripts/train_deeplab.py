from mctformer.logs import redirect_to_log
from mctformer.stages.deeplab import DatasetRef, Placement, train_deeplab_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    placement, keys = Placement.take(keys)
    train_deeplab_stage(
        **keys,
        dataset=dataset,
        placement=placement,
        mask_dir=snakemake.params.mask_dir, resume=snakemake.params.resume,
        checkpoint=snakemake.output.checkpoint,
        log_csv=snakemake.output.log_csv,
        threads=snakemake.threads,
    )
