from mctformer.logs import redirect_to_log
from mctformer.stages.deeplab import DatasetRef, evaluate_deeplab_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    evaluate_deeplab_stage(
        **keys,
        dataset=dataset, title=snakemake.params.title,
        mask_dir=snakemake.input.masks,
        table_path=snakemake.output.table,
        summary_path=snakemake.output.summary,
        plot_path=snakemake.output.plot,
    )
