from mctformer.logs import redirect_to_log
from mctformer.stages.psa import DatasetRef, WalkSettings, psa_ablation_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    walk, keys = WalkSettings.take(keys)
    psa_ablation_stage(
        **keys,
        dataset=dataset,
        walk=walk,
        split=snakemake.wildcards.split,
        map_dir=snakemake.input.maps,
        best_json=snakemake.input.best[0] if snakemake.input.best else None,
        learned_summary=snakemake.input.learned,
        table_path=snakemake.output[0],
        threads=snakemake.threads,
    )
