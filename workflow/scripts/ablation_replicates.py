from mctformer.ablations import ablation_replicates_stage
from mctformer.logs import redirect_to_log

with redirect_to_log(snakemake.log[0]):
    ablation_replicates_stage(
        **snakemake.params.config_keys,
        ablation=snakemake.wildcards.ablation,
        tables=list(snakemake.input.tables),
        table_path=snakemake.output.table,
        plot_path=snakemake.output.plot,
        section_path=snakemake.output.section,
    )
