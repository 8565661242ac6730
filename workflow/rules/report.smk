# The run's summary.json and report.md (with plots; also in `snakemake --report report.html`).


rule report:
    input:
        **dataset_inputs(),
        seeds=seed_targets(),
        masks=mask_targets(),
        ablation=[f"{RUN}/masks/ablation_{split}.csv" for split in config["psa"]["eval_splits"]],
        deeplab=deeplab_targets(),
    output:
        summary=f"{RUN}/summary.json",
        report=f"{RUN}/report.md",
        seed_ablation=report(f"{RUN}/figures/seed_ablation.png", category="Seeds", caption="../report/seed_ablation.rst"),
        per_class=report(f"{RUN}/figures/per_class_iou.png", category="Masks and segmentation", caption="../report/per_class.rst"),
        examples_masks=report(f"{RUN}/figures/examples_masks.png", category="Masks and segmentation", caption="../report/examples.rst"),
        examples_deeplab=report(f"{RUN}/figures/examples_deeplab.png", category="Masks and segmentation", caption="../report/examples.rst"),
    params:
        root=data_root_of,
        layout=LAYOUT,
        classes=CLASSES,
        run_dir=lambda wildcards, output: os.path.dirname(output.summary),
        seed_splits=SPLITS["seed_eval"],
        variants=VARIANTS,
        psa_variant=config["psa"]["seed_variant"],
        mask_splits=config["psa"]["eval_splits"],
        deeplab_models=deeplab_models(),
        deeplab_split=config["deeplab"]["eval_split"],
    log:
        f"{RUN}/logs/report.log",
    benchmark:
        f"{RUN}/benchmarks/report.tsv"
    threads: rule_threads("report")
    resources:
        **rule_resources_of("report"),
    conda:
        ENV
    script:
        "../scripts/report.py"
