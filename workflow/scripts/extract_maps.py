from mctformer.logs import redirect_to_log
from mctformer.stages.seeds import DatasetRef, MapGeometry, Placement, Shard, extract_maps_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    placement, keys = Placement.take(keys)
    geometry, keys = MapGeometry.take(keys)
    extract_maps_stage(
        **keys,
        dataset=dataset,
        placement=placement,
        geometry=geometry,
        labels_path=snakemake.input.labels,
        checkpoint=snakemake.input.checkpoint,
        out_dirs=dict(zip(snakemake.params.variants, snakemake.output.maps)),
        overlay_dir=snakemake.output.overlays,
        threads=snakemake.threads,
        shard=Shard.parse(snakemake.wildcards.get("shard")),  # resources.rules.<rule>.shards > 1
    )
