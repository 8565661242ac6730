# MCTformer weakly supervised semantic segmentation pipeline.
#   snakemake --cores all                      the embedded default (config.yaml)
#   snakemake --cores 8 --configfile workflow/configs/voc12.yaml
# Stages and artifacts: see README.md and the rules under workflow/rules/.


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/seeds.smk"
include: "workflow/rules/psa.smk"
include: "workflow/rules/irn.smk"
include: "workflow/rules/deeplab.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/ablations.smk"


rule all:
    default_target: True
    input:
        f"{RUN}/report.md",
        replicate_targets(),
        submission_targets(),
