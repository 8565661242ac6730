from mctformer.logs import redirect_to_log
from mctformer.stages.psa import evaluate_masks_stage

with redirect_to_log(snakemake.log[0]):
    evaluate_masks_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root,
        split=snakemake.wildcards.split,
        mask_dir=snakemake.input.masks,
        table_path=snakemake.output.table,
        summary_path=snakemake.output.summary,
        plot_path=snakemake.output.plot,
    )
