from mctformer.logs import redirect_to_log
from mctformer.shards import gather_benchmarks, gather_folders, gather_label_stats

# gather_<rule> (workflow/rules/shards.smk): each folder_<i> output from its shards' folder_<i> parts
with redirect_to_log(snakemake.log[0]):
    folders = sorted(name for name in snakemake.output.keys() if name.startswith("folder_"))
    for name in folders:
        files = gather_folders(snakemake.input[name], snakemake.output[name])
        print(f"{snakemake.output[name]}: {files} files from {len(snakemake.input[name])} shards")
    if "label_stats" in snakemake.output.keys():
        print(gather_label_stats(snakemake.input.label_counts, snakemake.output.label_stats))
    if "tarball" in snakemake.output.keys():
        from mctformer.segmentation import pack_submission

        pack_submission(snakemake.output.folder_0, snakemake.output.tarball)
    gather_benchmarks(snakemake.input.benchmarks, snakemake.output.benchmark)
