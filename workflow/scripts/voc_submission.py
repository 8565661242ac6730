from mctformer.logs import redirect_to_log
from mctformer.stages.deeplab import DatasetRef, submission_stage

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    submission_stage(
        **keys,
        dataset=dataset,
        checkpoint=snakemake.input.checkpoint,
        out_dir=snakemake.output.folder,
        tarball=snakemake.output.tarball,
        threads=snakemake.threads,
    )
