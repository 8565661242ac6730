# MCTformer multi-label classification training.


rule train_classifier:
    input:
        **dataset_inputs(),
        labels=rules.class_labels.output[0],
    output:
        checkpoint=f"{REP}/classifier/checkpoint.pt",
        log_csv=f"{REP}/classifier/log.csv",
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
        ),
        # Kept beside the outputs, not among them, so a killed job's state survives for the rerun.
        resume=f"{REP}/classifier/resume/last.pt",
    script:
        "../scripts/train_classifier.py"
