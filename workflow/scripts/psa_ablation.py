from mctformer.logs import redirect_to_log
from mctformer.stages.psa import psa_ablation_stage

with redirect_to_log(snakemake.log[0]):
    psa_ablation_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root,
        split=snakemake.wildcards.split,
        map_dir=snakemake.input.maps,
        best_json=snakemake.input.best[0] if snakemake.input.best else None,
        learned_summary=snakemake.input.learned,
        table_path=snakemake.output[0],
        threads=snakemake.threads,
    )
