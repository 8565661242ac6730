from mctformer.logs import redirect_to_log
from mctformer.stages.deeplab import DatasetRef, infer_deeplab_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    infer_deeplab_stage(
        **keys,
        dataset=dataset,
        checkpoint=snakemake.input.checkpoint,
        pred_dir=snakemake.output.pred,
        crf_dir=snakemake.output.pred_crf,
        threads=snakemake.threads,
    )
