from mctformer.logs import redirect_to_log
from mctformer.stages.irn import ir_labels_stage

with redirect_to_log(snakemake.log[0]):
    ir_labels_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root,
        map_dir=snakemake.input.maps,
        out_dir=snakemake.output.labels,
        stats_path=snakemake.output.stats,
        threads=snakemake.threads,
    )
