from mctformer.logs import redirect_to_log
from mctformer.stages.classifier import train_classifier_stage

with redirect_to_log(snakemake.log[0]):
    train_classifier_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root, resume=snakemake.params.resume,
        labels_path=snakemake.input.labels,
        checkpoint=snakemake.output.checkpoint,
        log_csv=snakemake.output.log_csv,
        threads=snakemake.threads,
    )
