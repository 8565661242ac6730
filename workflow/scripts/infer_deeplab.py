from mctformer.logs import redirect_to_log
from mctformer.stages import infer_deeplab_stage

with redirect_to_log(snakemake.log[0]):
    infer_deeplab_stage(
        snakemake.params.root,
        snakemake.params.layout,
        snakemake.params.classes,
        snakemake.params.palette,
        snakemake.params.split,
        snakemake.input.checkpoint,
        snakemake.params.settings,
        device=snakemake.params.device,
        pred_dir=snakemake.output.pred,
        crf_dir=snakemake.output.pred_crf,
        threads=snakemake.threads,
    )
