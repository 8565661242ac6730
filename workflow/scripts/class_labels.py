from mctformer.logs import redirect_to_log
from mctformer.stages.data import DatasetRef, make_class_labels

with redirect_to_log(snakemake.log[0]):
    dataset, keys = DatasetRef.take(snakemake.params.root, snakemake.params.config_keys)
    make_class_labels(**keys, dataset=dataset, out_path=snakemake.output[0], workers=snakemake.threads)
