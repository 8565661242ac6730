from mctformer.logs import redirect_to_log
from mctformer.stages.data import prepare_voc12

with redirect_to_log(snakemake.log[0]):
    prepare_voc12(
        voc=snakemake.input.voc,
        sbd=snakemake.input.get("sbd"),
        out_root=snakemake.output[0],
        test=snakemake.input.get("test"),
    )
