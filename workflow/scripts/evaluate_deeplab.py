from mctformer.logs import redirect_to_log
from mctformer.stages import evaluate_masks_stage

with redirect_to_log(snakemake.log[0]):
    evaluate_masks_stage(
        snakemake.params.root,
        snakemake.params.layout,
        snakemake.params.classes,
        snakemake.params.split,
        snakemake.input.masks,
        table_path=snakemake.output.table,
        summary_path=snakemake.output.summary,
        plot_path=snakemake.output.plot,
        title=snakemake.params.title,
    )
