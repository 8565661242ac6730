import os

from mctformer.logs import redirect_to_log
from mctformer.stages.data import prepare_folder

with redirect_to_log(snakemake.log[0]):
    split_lists = snakemake.input.get("split_lists")
    prepare_folder(
        **snakemake.params.config_keys,
        images=snakemake.input.images,
        labels=snakemake.input.labels,
        masks=snakemake.input.masks,
        split_lists=os.path.dirname(split_lists[0]) if split_lists else None,
        out_root=snakemake.output[0],
    )
