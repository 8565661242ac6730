from mctformer.logs import redirect_to_log
from mctformer.stages.deeplab import train_deeplab_stage

with redirect_to_log(snakemake.log[0]):
    train_deeplab_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root, mask_dir=snakemake.params.mask_dir, resume=snakemake.params.resume,
        checkpoint=snakemake.output.checkpoint,
        log_csv=snakemake.output.log_csv,
        threads=snakemake.threads,
    )
