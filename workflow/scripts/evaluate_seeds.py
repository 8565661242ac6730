from mctformer.logs import redirect_to_log
from mctformer.stages import evaluate_seeds_stage

variants = snakemake.params.variants
with redirect_to_log(snakemake.log[0]):
    evaluate_seeds_stage(
        snakemake.params.root,
        snakemake.params.layout,
        snakemake.params.classes,
        snakemake.input.labels,
        snakemake.wildcards.split,
        map_dirs=dict(zip(variants, snakemake.input.maps)),
        thresholds=snakemake.params.thresholds,
        miou_convention=snakemake.params.miou_convention,
        selection=snakemake.params.selection,
        out_files={
            variant: {"sweep": sweep, "best": best}
            for variant, sweep, best in zip(variants, snakemake.output.sweeps, snakemake.output.bests)
        },
        plot_path=snakemake.output.plot,
    )
