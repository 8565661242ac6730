from mctformer.logs import redirect_to_log
from mctformer.stages.data import make_class_labels

with redirect_to_log(snakemake.log[0]):
    make_class_labels(**snakemake.params.config_keys, root=snakemake.params.root, out_path=snakemake.output[0], workers=snakemake.threads)
