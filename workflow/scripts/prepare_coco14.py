from mctformer.logs import redirect_to_log
from mctformer.stages.data import prepare_coco14

with redirect_to_log(snakemake.log[0]):
    prepare_coco14(
        images_root=snakemake.input.images,
        annotations_dir=snakemake.input.annotations,
        out_root=snakemake.output[0],
        workers=snakemake.threads,
    )
