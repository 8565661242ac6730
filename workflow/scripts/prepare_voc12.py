from mctformer.data.prepare import prepare_voc12
from mctformer.logs import redirect_to_log

with redirect_to_log(snakemake.log[0]):
    prepare_voc12(
        voc=snakemake.input.voc,
        sbd=snakemake.input.get("sbd"),
        out_root=snakemake.output[0],
        test=snakemake.input.get("test"),
    )
