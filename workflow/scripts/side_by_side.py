from mctformer.logs import redirect_to_log
from mctformer.stages.side_by_side import side_by_side_stage

# params.files: the rule's inputs (every one declared there) by model, replicate and role
with redirect_to_log(snakemake.log[0]):
    side_by_side_stage(
        **snakemake.params.config_keys,
        files=snakemake.params.files,
        config=snakemake.config,
        json_path=snakemake.output.json,
        markdown_path=snakemake.output.markdown,
        figure_path=snakemake.output.figure,
    )
