from mctformer.logs import redirect_to_log
from mctformer.stages.irn import train_irn_stage

with redirect_to_log(snakemake.log[0]):
    train_irn_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root,
        label_dir=snakemake.input.labels,
        checkpoint=snakemake.output.checkpoint,
        log_csv=snakemake.output.log_csv,
        resume=snakemake.params.resume,
        threads=snakemake.threads,
    )
