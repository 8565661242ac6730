from mctformer.logs import redirect_to_log
from mctformer.stages.data import prepare_synthetic_data

with redirect_to_log(snakemake.log[0]):
    prepare_synthetic_data(**snakemake.params.config_keys, out_root=snakemake.output[0], workers=snakemake.threads)
