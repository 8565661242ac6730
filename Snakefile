# MCTformer weakly supervised semantic segmentation pipeline.
#   snakemake --cores all                      the embedded default (config.yaml)
#   snakemake --cores 8 --configfile workflow/configs/voc12.yaml
# Stages and artifacts: see docs/pipeline.md and the rules under workflow/rules/.


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/seeds.smk"
include: "workflow/rules/psa.smk"
include: "workflow/rules/irn.smk"
include: "workflow/rules/deeplab.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/ablations.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/side_by_side.smk"


rule all:
    default_target: True
    input:
        f"{RUN}/report.md",
        replicate_targets(),
        submission_targets(),


# The ablation targets (workflow/rules/ablations.smk), outside `all`: `snakemake ablation_<name>` asks for replicate
# 0's table, or with replicates > 1 the aggregate over every replicate.


rule ablation_layers:
    input:
        **ablation_files("layers"),


rule ablation_heads:
    input:
        **ablation_files("heads"),


rule ablation_maps:
    input:
        **ablation_files("maps"),


rule ablation_segmentation:
    input:
        **ablation_files("segmentation"),
