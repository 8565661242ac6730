from mctformer.logs import redirect_to_log
from mctformer.stages import make_class_labels

with redirect_to_log(snakemake.log[0]):
    make_class_labels(
        snakemake.params.root,
        snakemake.params.layout,
        snakemake.params.classes,
        snakemake.params.splits,
        snakemake.output[0],
        workers=snakemake.threads,
    )
