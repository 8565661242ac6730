import os

from mctformer.data.layout import open_layout
from mctformer.logs import redirect_to_log
from mctformer.report import build_report

with redirect_to_log(snakemake.log[0]):
    build_report(
        snakemake.params.run_dir,
        open_layout(snakemake.params.root, snakemake.params.layout, len(snakemake.params.classes)),
        snakemake.params.seed_splits,
        snakemake.params.variants,
        snakemake.params.psa_variant,
        snakemake.params.mask_splits,
        snakemake.params.deeplab_models,
        snakemake.params.deeplab_split,
        summary_path=snakemake.output.summary,
        report_path=snakemake.output.report,
        figure_dir=os.path.dirname(snakemake.output.seed_ablation),
    )
