from mctformer.data.prepare import prepare_coco14
from mctformer.logs import redirect_to_log

with redirect_to_log(snakemake.log[0]):
    prepare_coco14(
        snakemake.input.images,
        snakemake.input.annotations,
        snakemake.output[0],
        workers=snakemake.threads,
    )
