from mctformer.logs import redirect_to_log
from mctformer.stages import prepare_synthetic_data

with redirect_to_log(snakemake.log[0]):
    prepare_synthetic_data(
        snakemake.output[0],
        snakemake.params.data,
        snakemake.params.synthetic,
        seed=snakemake.params.seed,
        workers=snakemake.threads,
    )
