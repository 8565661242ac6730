from mctformer.logs import redirect_to_log
from mctformer.stages.ablations import ablation_replicates_stage

with redirect_to_log(snakemake.log[0]):
    ablation_replicates_stage(
        **snakemake.params.config_keys,
        ablation=snakemake.wildcards.ablation,
        tables=list(snakemake.input.tables),
        table_path=snakemake.output.table,
        plot_path=snakemake.output.plot,
        section_path=snakemake.output.section,
    )
