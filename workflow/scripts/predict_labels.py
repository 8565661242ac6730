from mctformer.logs import redirect_to_log
from mctformer.stages.classifier import DatasetRef, Placement, predict_labels_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    placement, keys = Placement.take(keys)
    predict_labels_stage(
        **keys,
        dataset=dataset,
        placement=placement,
        labels_path=snakemake.input.labels,
        checkpoint=snakemake.input.checkpoint,
        labels_out=snakemake.output.labels,
        scores_out=snakemake.output.scores,
        evaluation_out=snakemake.output.evaluation,
        threads=snakemake.threads,
    )
