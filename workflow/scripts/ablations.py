from mctformer.logs import redirect_to_log
from mctformer.stages.ablations import ablations_report_stage

with redirect_to_log(snakemake.log[0]):
    ablations_report_stage(
        **snakemake.params.config_keys,
        sections=list(snakemake.input.sections),
        report_path=snakemake.output[0],
    )
