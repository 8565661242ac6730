from mctformer.logs import redirect_to_log
from mctformer.stages.psa import DatasetRef, evaluate_masks_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    evaluate_masks_stage(
        **keys,
        dataset=dataset,
        split=snakemake.wildcards.split,
        mask_dir=snakemake.input.masks,
        table_path=snakemake.output.table,
        summary_path=snakemake.output.summary,
        plot_path=snakemake.output.plot,
    )
