# The run's summary.json and report.md (with plots; also in `snakemake --report report.html`).
# Every file the report reads is an input here, so the layout of the outputs lives in the rules alone
# and a changed artifact reruns the report.


rule report:
    input:
        **dataset_inputs(),
        seed_bests=expand(f"{RUN}/seeds/{{split}}/{{variant}}/best.json", split=SPLITS["seed_eval"], variant=VARIANTS),
        seed_plots=seed_targets(),
        mask_summaries=mask_targets(),
        mask_tables=[f"{RUN}/masks/eval_{split}.csv" for split in config["psa"]["eval_splits"]],
        ablation_table=f"{RUN}/masks/ablation_{config['psa']['eval_splits'][0]}.csv",
        label_stats=rules.psa_labels.output.stats,
        deeplab_summaries=[
            f"{RUN}/{model}/eval_{folder}.json" for model in deeplab_models() for folder in ("pred", "pred_crf")
        ],
        deeplab_tables=[f"{RUN}/{model}/eval_pred_crf.csv" for model in deeplab_models()],
        benchmarks=benchmark_files(),
        example_maps=f"{RUN}/maps/{config['psa']['seed_variant']}",
        example_masks=rules.random_walk.output[0],
        example_predictions=[f"{RUN}/deeplab/pred", f"{RUN}/deeplab/pred_crf"],
    output:
        summary=f"{RUN}/summary.json",
        report=f"{RUN}/report.md",
        seed_ablation=report(
            f"{RUN}/figures/seed_ablation.png", category="Seeds", caption="../report/seed_ablation.rst"
        ),
        per_class=report(
            f"{RUN}/figures/per_class_iou.png", category="Masks and segmentation", caption="../report/per_class.rst"
        ),
        examples_masks=report(
            f"{RUN}/figures/examples_masks.png", category="Masks and segmentation", caption="../report/examples.rst"
        ),
        examples_deeplab=report(
            f"{RUN}/figures/examples_deeplab.png", category="Masks and segmentation", caption="../report/examples.rst"
        ),
    log:
        f"{RUN}/logs/report.log",
    benchmark:
        f"{RUN}/benchmarks/report.tsv"
    conda:
        ENV
    threads: rule_threads("report")
    resources:
        **rule_resources_of("report"),
    params:
        root=data_root_of,
        layout=LAYOUT,
        classes=CLASSES,
        seed_splits=SPLITS["seed_eval"],
        variants=VARIANTS,
        mask_splits=config["psa"]["eval_splits"],
        deeplab_models=deeplab_models(),
        psa_variant=config["psa"]["seed_variant"],
        deeplab_split=config["deeplab"]["eval_split"],
        examples=4,  # images per qualitative figure
    script:
        "../scripts/report.py"
