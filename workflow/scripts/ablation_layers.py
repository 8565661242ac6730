from mctformer.logs import redirect_to_log
from mctformer.stages.ablations import DatasetRef, MapGeometry, Placement, layer_ablation_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    placement, keys = Placement.take(keys)
    geometry, keys = MapGeometry.take(keys)
    layer_ablation_stage(
        **keys,
        dataset=dataset,
        placement=placement,
        geometry=geometry,
        labels_path=snakemake.input.labels,
        checkpoint=snakemake.input.checkpoint,
        table_path=snakemake.output.table,
        sweeps_path=snakemake.output.sweeps,
        plot_path=snakemake.output.plot,
        section_path=snakemake.output.section,
        threads=snakemake.threads,
    )
