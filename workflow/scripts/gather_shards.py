from mctformer.logs import redirect_to_log
from mctformer.stages.shards import gather_stage

# gather_<rule> (workflow/rules/shards.smk): each folder_<i> output from its shards' folder_<i> parts
outputs, inputs = snakemake.output, snakemake.input
with redirect_to_log(snakemake.log[0]):
    gather_stage(
        folders={name: (inputs[name], outputs[name]) for name in sorted(outputs.keys()) if name.startswith("folder_")},
        label_counts=inputs.get("label_counts", []),
        label_stats=outputs.get("label_stats"),
        tarball=outputs.get("tarball"),
        benchmarks=inputs.benchmarks,
        benchmark=outputs.benchmark,
    )
