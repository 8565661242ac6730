from mctformer.logs import redirect_to_log
from mctformer.stages import extract_maps_stage

with redirect_to_log(snakemake.log[0]):
    extract_maps_stage(
        snakemake.params.root,
        snakemake.params.layout,
        snakemake.params.classes,
        snakemake.input.labels,
        snakemake.input.checkpoint,
        snakemake.params.splits,
        snakemake.params.settings,
        device=snakemake.params.device,
        out_dirs=dict(zip(snakemake.params.variants, snakemake.output.maps)),
        overlay_dir=snakemake.output.overlays,
        threads=snakemake.threads,
    )
