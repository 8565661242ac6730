# The run's summary.json and report.md (with plots; also in `snakemake --report report.html`).
# Every file the report reads is an input here, so the layout of the outputs lives in the rules alone
# and a changed artifact reruns the report. Its masks section is the first of refine.methods (PSA's when the run has
# it); the refinement table has every method of refine.methods, DeepLab on each that deeplab.pseudo_masks names.
PRIMARY = REFINEMENTS[0]
PRIMARY_VARIANT = config[PRIMARY]["seed_variant"]
PRIMARY_MASK_SPLITS = config[PRIMARY]["eval_splits"]
PRIMARY_MASKS = REP_FILES.masks(PRIMARY)
REPORTED = comparison_files(
    config, REP_FILES, REFINEMENTS, [source for source in deeplab_sources(config) if source in REFINEMENTS]
)
# Every trainer's curve lines (beside its CSV log), for the report's training-curves figure: the classifier, the
# refinements' networks, each DeepLab model.
TRAINING_CURVES = {
    "classifier": rules.train_classifier.output.log_jsonl,
    **({"affinity": rules.train_affinity.output.log_jsonl} if "psa" in REFINEMENTS else {}),
    **({"irn": rules.train_irn.output.log_jsonl} if "irn" in REFINEMENTS else {}),
    **{model: rules.train_deeplab.output.log_jsonl.replace("{model}", model) for model in deeplab_models()},
}
# Each replicate has its report (replicate 0's at RUN: summary.json, report.md); with replicates > 1, replicate 0's is
# report_replicates below, which also reads the others' summary.json and aggregates every metric over all of them.


rule report:
    input:
        **dataset_inputs(),
        seed_bests=expand(
            REP_FILES.seed_best("{split}", "{variant}"),
            split=SPLITS["seed_eval"],
            variant=VARIANTS,
            allow_missing=True,
        ),
        seed_plots=seed_targets(),
        predicted_seed_bests=expand(
            REP_FILES.seed_best("{split}", "{variant}", predicted=True),
            split=SPLITS["seed_eval"] if PREDICTED_SEEDS else [],
            variant=VARIANTS,
            allow_missing=True,
        ),
        label_evaluation=[REP_FILES.label_evaluation()] if PREDICTED_SEEDS else [],
        mask_summaries=[f"{PRIMARY_MASKS}/eval_{split}.json" for split in PRIMARY_MASK_SPLITS],
        mask_tables=[f"{PRIMARY_MASKS}/eval_{split}.csv" for split in PRIMARY_MASK_SPLITS],
        ablation_table=[REPORTED["crf_only_table"]] if REPORTED["crf_only_table"] else [],
        label_stats=PSA_LABEL_STATS if PRIMARY == "psa" else IRN_LABEL_STATS,
        refinement_files=flat_paths(REPORTED),
        deeplab_summaries=[
            REP_FILES.deeplab_evaluation(model, folder) for model in deeplab_models() for folder in PREDICTION_FOLDERS
        ],
        deeplab_tables=[REP_FILES.deeplab_evaluation(model, "pred_crf", "csv") for model in deeplab_models()],
        benchmarks=benchmark_files(),
        example_maps=REP_FILES.maps(PRIMARY_VARIANT),
        example_masks=PSEUDO_MASKS[PRIMARY],
        example_predictions=[f"{REP_FILES.deeplab(deeplab_models()[0])}/{folder}" for folder in PREDICTION_FOLDERS],
        replicate_summaries=[],
        pretrained_weights=pretrained_files(),
        training_curves=list(TRAINING_CURVES.values()),
    output:
        **report_outputs(REP),
    log:
        REP_FILES.log("report"),
    benchmark:
        REP_FILES.benchmark("report")
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
        label_threshold=config["seeds"]["label_threshold"],
        variants=VARIANTS,
        mask_splits=PRIMARY_MASK_SPLITS,
        deeplab_models=deeplab_models(),
        refinement=PRIMARY,
        refinements=lambda wildcards: at_replicate(REPORTED, wildcards.replicate),
        psa_variant=PRIMARY_VARIANT,
        deeplab_split=config["deeplab"]["eval_split"],
        examples=4,  # images per qualitative figure
        replicate_seeds=lambda wildcards: [replicate_seed(wildcards)],
        trainers=list(TRAINING_CURVES),
    script:
        "../scripts/report.py"


if len(REPLICATE_SEEDS) > 1:

    use rule report as report_replicates with:
        input:
            **at_replicate(
                {key: value for key, value in rules.report.input.items() if key != "replicate_summaries"}, ""
            ),
            replicate_summaries=other_replicate_summaries(),
        output:
            **report_outputs(RUN),
            replicates_plot=report(
                RUN_FILES.figure("replicates"), category="Replicates", caption="../report/replicates.rst"
            ),
        log:
            RUN_FILES.log("report"),
        benchmark:
            RUN_FILES.benchmark("report")
        params:
            refinements=at_replicate(REPORTED, ""),
            replicate_seeds=REPLICATE_SEEDS,

    ruleorder: report_replicates > report
