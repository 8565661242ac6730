# DeepLab on the pseudo masks ("deeplab": PSA's, "deeplab_irn": IRN's) and, optionally, on ground truth ("deeplab_gt").
SUBMISSION_FOLDER = f"{RUN}/deeplab/submission"
SUBMISSION_TARBALL = f"{RUN}/deeplab/submission.tar.gz"


rule train_deeplab:
    input:
        unpack(deeplab_training_inputs),
    output:
        checkpoint=REP_FILES.deeplab_checkpoint("{model}"),
        log_csv=f"{REP}/{{model}}/log.csv",
        log_jsonl=f"{REP}/{{model}}/log.jsonl",
    log:
        REP_FILES.log("train_{model}"),
    benchmark:
        REP_FILES.benchmark("train_{model}")
    wildcard_constraints:
        model=DEEPLAB_MODELS,
    conda:
        ENV
    threads: rule_threads("train_deeplab")
    resources:
        **rule_resources_of("train_deeplab"),
    params:
        root=data_root_of,
        mask_dir=lambda wildcards, input: input.get("masks"),
        resume=lambda wildcards: f"{RUN}{wildcards.replicate}/{wildcards.model}/resume/last.pt",
        config_keys=lambda wildcards: dict(
            layout=LAYOUT,
            classes=CLASSES,
            split=SPLITS["train"],
            settings=section_keys("deeplab", *in_section_order("deeplab", DEEPLAB_TRAINING_KEYS)),
            seed=replicate_seed(wildcards),
            **device_keys("train_deeplab"),
            tensorboard=config["logging"]["tensorboard"],
        ),
    script:
        "../scripts/train_deeplab.py"


rule infer_deeplab:
    input:
        **dataset_inputs(),
        checkpoint=REP_FILES.deeplab_checkpoint("{model}"),
    output:
        pred=sharded_directories("infer_deeplab", f"{REP}/{{model}}/pred"),
        pred_crf=sharded_directories("infer_deeplab", f"{REP}/{{model}}/pred_crf"),
    log:
        sharded_log("infer_deeplab"),
    benchmark:
        sharded_benchmark("infer_deeplab")
    wildcard_constraints:
        model=DEEPLAB_MODELS,
    conda:
        ENV_CRF
    threads: rule_threads("infer_deeplab")
    resources:
        **rule_resources_of("infer_deeplab"),
    params:
        root=data_root_of,
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            palette=config["data"]["palette"],
            split=config["deeplab"]["eval_split"],
            **device_keys("infer_deeplab"),
            head=config["deeplab"]["head"],
            **section_keys("deeplab", *in_section_order("deeplab", DEEPLAB_INFERENCE_KEYS)),
        ),
    script:
        "../scripts/infer_deeplab.py"


rule evaluate_deeplab:
    input:
        **dataset_inputs(),
        masks=f"{REP}/{{model}}/{{folder}}",
    output:
        table=REP_FILES.deeplab_evaluation("{model}", "{folder}", "csv"),
        summary=REP_FILES.deeplab_evaluation("{model}", "{folder}"),
        plot=REP_FILES.deeplab_evaluation("{model}", "{folder}", "png"),
    log:
        REP_FILES.log("evaluate_{model}_{folder}"),
    benchmark:
        REP_FILES.benchmark("evaluate_{model}_{folder}")
    wildcard_constraints:
        model=DEEPLAB_MODELS,
        folder="pred|pred_crf",
    conda:
        ENV
    threads: rule_threads("evaluate_deeplab")
    resources:
        **rule_resources_of("evaluate_deeplab"),
    params:
        root=data_root_of,
        title=lambda wildcards: f"{wildcards.model} ({'with CRF' if wildcards.folder == 'pred_crf' else 'no CRF'})",
        config_keys=dict(layout=LAYOUT, classes=CLASSES, split=config["deeplab"]["eval_split"]),
    script:
        "../scripts/evaluate_deeplab.py"


rule voc_submission:
    input:
        **dataset_inputs(),
        checkpoint=f"{RUN}/deeplab/checkpoint.pt",
    output:
        # with shards, each writes its part of the folder and gather_voc_submission packs the tarball
        **(
            dict(folder=directory(SUBMISSION_FOLDER), tarball=SUBMISSION_TARBALL)
            if rule_shards("voc_submission") == 1
            else dict(folder=sharded_directories("voc_submission", SUBMISSION_FOLDER))
        ),
    log:
        sharded_log("voc_submission"),
    benchmark:
        sharded_benchmark("voc_submission")
    conda:
        ENV_CRF
    threads: rule_threads("voc_submission")
    resources:
        **rule_resources_of("voc_submission"),
    params:
        root=data_root_of,
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            palette=config["data"]["palette"],
            split=config["deeplab"]["test_split"],
            **device_keys("voc_submission"),
            head=config["deeplab"]["head"],
            **section_keys("deeplab", *in_section_order("deeplab", DEEPLAB_INFERENCE_KEYS)),
        ),
    script:
        "../scripts/voc_submission.py"
