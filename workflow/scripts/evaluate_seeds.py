from mctformer.logs import redirect_to_log
from mctformer.stages.seeds import DatasetRef, evaluate_seeds_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    evaluate_seeds_stage(
        **keys,
        dataset=dataset,
        labels_path=snakemake.input.labels,
        split=snakemake.wildcards.split,
        map_dirs=dict(zip(snakemake.params.variants, snakemake.input.maps)),
        out_files={
            variant: {"sweep": sweep, "best": best}
            for variant, sweep, best in zip(snakemake.params.variants, snakemake.output.sweeps, snakemake.output.bests)
        },
        plot_path=snakemake.output.plot,
    )
