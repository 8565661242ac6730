from mctformer.logs import redirect_to_log
from mctformer.stages.seeds import extract_maps_stage

with redirect_to_log(snakemake.log[0]):
    extract_maps_stage(
        **snakemake.params.config_keys,
        root=snakemake.params.root,
        labels_path=snakemake.input.labels,
        checkpoint=snakemake.input.checkpoint,
        out_dirs=dict(zip(snakemake.params.variants, snakemake.output.maps)),
        overlay_dir=snakemake.output.overlays,
        threads=snakemake.threads,
    )
