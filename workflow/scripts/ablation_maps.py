from mctformer.logs import redirect_to_log
from mctformer.stages.ablations import maps_table_stage

params = snakemake.params
bests = iter(snakemake.input.bests)  # variant-major, then split
with redirect_to_log(snakemake.log[0]):
    maps_table_stage(
        **params.config_keys,
        seed_bests={variant: {split: next(bests) for split in params.splits} for variant in params.variants},
        table_path=snakemake.output.table,
        plot_path=snakemake.output.plot,
        section_path=snakemake.output.section,
    )
