from mctformer.logs import redirect_to_log
from mctformer.stages import train_classifier_stage

with redirect_to_log(snakemake.log[0]):
    train_classifier_stage(
        snakemake.params.root,
        snakemake.params.layout,
        snakemake.params.classes,
        snakemake.input.labels,
        snakemake.params.splits,
        snakemake.params.settings,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        checkpoint=snakemake.output.checkpoint,
        log_csv=snakemake.output.log_csv,
        resume=snakemake.params.resume,
        threads=snakemake.threads,
        # several GPUs: one DDP process each (resources come from config `resources`)
        processes=max(1, int(snakemake.resources.get("gpu", 1))),
    )
