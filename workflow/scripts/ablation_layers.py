from mctformer.logs import redirect_to_log
from mctformer.stages.ablations import layer_ablation_stage

with redirect_to_log(snakemake.log[0]):
    layer_ablation_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root,
        labels_path=snakemake.input.labels,
        checkpoint=snakemake.input.checkpoint,
        table_path=snakemake.output.table,
        sweeps_path=snakemake.output.sweeps,
        plot_path=snakemake.output.plot,
        section_path=snakemake.output.section,
        threads=snakemake.threads,
    )
