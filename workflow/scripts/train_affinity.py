from mctformer.logs import redirect_to_log
from mctformer.stages.psa import train_affinity_stage

with redirect_to_log(snakemake.log[0]):
    train_affinity_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root, resume=snakemake.params.resume,
        label_dir=snakemake.input.labels,
        checkpoint=snakemake.output.checkpoint,
        log_csv=snakemake.output.log_csv,
        threads=snakemake.threads,
    )
