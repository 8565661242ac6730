from mctformer.logs import redirect_to_log
from mctformer.stages.ablations import segmentation_table_stage

params, inputs = snakemake.params, snakemake.input
masks, deeplab = iter(inputs.mask_summaries), iter(inputs.deeplab_summaries)  # variant-major
with redirect_to_log(snakemake.log[0]):
    segmentation_table_stage(
        **params.config_keys,
        seed_bests=dict(zip(params.variants, inputs.seed_bests)),
        mask_summaries={variant: {split: next(masks) for split in params.mask_splits} for variant in params.variants},
        deeplab_summaries={variant: {folder: next(deeplab) for folder in ("pred", "pred_crf")} for variant in params.variants},
        table_path=snakemake.output.table,
        plot_path=snakemake.output.plot,
        section_path=snakemake.output.section,
    )
