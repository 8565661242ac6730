from mctformer.logs import redirect_to_log
from mctformer.stages.irn import compare_refinements_stage

# params.files maps the rule's inputs (every one declared there) to the methods they belong to
with redirect_to_log(snakemake.log[0]):
    compare_refinements_stage(
        **snakemake.params.config_keys,
        **snakemake.params.files,
        json_path=snakemake.output.json,
        markdown_path=snakemake.output.markdown,
    )
