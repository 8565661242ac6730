# The run's summary.json and report.md (with plots; also in `snakemake --report report.html`).
# Every file the report reads is an input here, so the layout of the outputs lives in the rules alone
# and a changed artifact reruns the report. Its masks section is the first of refine.methods (PSA's when the run has
# it); the refinement table has every method of refine.methods, DeepLab on each that deeplab.pseudo_masks names.
PRIMARY = REFINEMENTS[0]
PRIMARY_VARIANT = config[PRIMARY]["seed_variant"]
PRIMARY_MASK_SPLITS = config[PRIMARY]["eval_splits"]
PRIMARY_MASKS = {"psa": f"{RUN}/masks", "irn": f"{RUN}/masks/irn"}[PRIMARY]
REPORTED = comparison_files(REFINEMENTS, [source for source in deeplab_sources(config) if source in REFINEMENTS])


rule report:
    input:
        **dataset_inputs(),
        seed_bests=expand(f"{RUN}/seeds/{{split}}/{{variant}}/best.json", split=SPLITS["seed_eval"], variant=VARIANTS),
        seed_plots=seed_targets(),
        mask_summaries=[f"{PRIMARY_MASKS}/eval_{split}.json" for split in PRIMARY_MASK_SPLITS],
        mask_tables=[f"{PRIMARY_MASKS}/eval_{split}.csv" for split in PRIMARY_MASK_SPLITS],
        ablation_table=[REPORTED["crf_only_table"]] if REPORTED["crf_only_table"] else [],
        label_stats=rules.psa_labels.output.stats if PRIMARY == "psa" else rules.ir_labels.output.stats,
        refinement_files=flat_paths(REPORTED),
        deeplab_summaries=[
            f"{RUN}/{model}/eval_{folder}.json" for model in deeplab_models() for folder in ("pred", "pred_crf")
        ],
        deeplab_tables=[f"{RUN}/{model}/eval_pred_crf.csv" for model in deeplab_models()],
        benchmarks=benchmark_files(),
        example_maps=f"{RUN}/maps/{PRIMARY_VARIANT}",
        example_masks=PSEUDO_MASKS[PRIMARY],
        example_predictions=[f"{RUN}/{deeplab_models()[0]}/pred", f"{RUN}/{deeplab_models()[0]}/pred_crf"],
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
        repairs=report(f"{RUN}/figures/repairs.png", category="Masks and segmentation", caption="../report/repairs.rst"),
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
        mask_splits=PRIMARY_MASK_SPLITS,
        deeplab_models=deeplab_models(),
        refinement=PRIMARY,
        refinements=REPORTED,
        psa_variant=PRIMARY_VARIANT,
        deeplab_split=config["deeplab"]["eval_split"],
        examples=4,  # images per qualitative figure
    script:
        "../scripts/report.py"
