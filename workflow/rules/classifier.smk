# MCTformer multi-label classification training.


rule train_classifier:
    input:
        **dataset_inputs(),
        **pretrained_input("classifier"),
        labels=rules.class_labels.output[0],
    output:
        checkpoint=REP_FILES.classifier_checkpoint(),
        log_csv=f"{REP}/classifier/log.csv",
        log_jsonl=f"{REP}/classifier/log.jsonl",
    log:
        REP_FILES.log("train_classifier"),
    benchmark:
        REP_FILES.benchmark("train_classifier")
    conda:
        ENV
    threads: rule_threads("train_classifier")
    resources:
        **rule_resources_of("train_classifier"),
    params:
        root=data_root_of,
        # the trainer reads every key of the classifier section (the chain's model's); the seed is the replicate's
        config_keys=lambda wildcards: dict(
            layout=LAYOUT,
            classes=CLASSES,
            train_split=SPLITS["train"],
            val_split=SPLITS["val"],
            settings=chain_config(wildcards)["classifier"],
            seed=replicate_seed(wildcards),
            **device_keys("train_classifier"),
            tensorboard=config["logging"]["tensorboard"],
        ),
        # Kept beside the outputs, not among them, so a killed job's state survives for the rerun.
        resume=f"{REP}/classifier/resume/last.pt",
    script:
        "../scripts/train_classifier.py"


# seeds.labels: predicted: the trained classifier's labels of the seed_eval splits, and how they compare with the truth.
rule predict_labels:
    input:
        **dataset_inputs(),
        labels=rules.class_labels.output[0],
        checkpoint=rules.train_classifier.output.checkpoint,
    output:
        labels=REP_FILES.predicted_labels(),
        scores=REP_FILES.label_scores(),
        evaluation=REP_FILES.label_evaluation(),
    log:
        REP_FILES.log("predict_labels"),
    benchmark:
        REP_FILES.benchmark("predict_labels")
    conda:
        ENV
    threads: rule_threads("predict_labels")
    resources:
        **rule_resources_of("predict_labels"),
    params:
        root=data_root_of,
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            splits=SPLITS["seed_eval"],
            settings=config["classifier"],
            label_threshold=config["seeds"]["label_threshold"],
            batch_size=config["maps"]["batch_size"],
            **device_keys("predict_labels"),
        ),
    script:
        "../scripts/predict_labels.py"
