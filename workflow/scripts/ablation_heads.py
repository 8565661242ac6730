from mctformer.logs import redirect_to_log
from mctformer.stages.ablations import heads_table_stage

params = snakemake.params
bests = iter(snakemake.input.bests)  # expand() order: pooling-major, then split
with redirect_to_log(snakemake.log[0]):
    heads_table_stage(
        **params.config_keys,
        seed_bests={pooling: {split: next(bests) for split in params.splits} for pooling in params.config_keys["poolings"]},
        table_path=snakemake.output.table,
        plot_path=snakemake.output.plot,
        section_path=snakemake.output.section,
    )
