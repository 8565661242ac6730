from mctformer.logs import redirect_to_log
from mctformer.stages import psa_ablation_stage

with redirect_to_log(snakemake.log[0]):
    psa_ablation_stage(
        snakemake.params.root,
        snakemake.params.layout,
        snakemake.params.classes,
        snakemake.wildcards.split,
        snakemake.input.maps,
        snakemake.input.best[0] if snakemake.input.best else None,
        snakemake.params.psa,
        snakemake.params.affinity,
        learned_summary=snakemake.input.learned,
        table_path=snakemake.output[0],
        threads=snakemake.threads,
    )
