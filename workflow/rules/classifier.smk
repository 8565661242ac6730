# MCTformer multi-label classification training.


rule train_classifier:
    input:
        **dataset_inputs(),
        labels=rules.class_labels.output[0],
    output:
        checkpoint=f"{RUN}/classifier/checkpoint.pt",
        log_csv=f"{RUN}/classifier/log.csv",
    log:
        f"{RUN}/logs/train_classifier.log",
    benchmark:
        f"{RUN}/benchmarks/train_classifier.tsv"
    conda:
        ENV
    threads: rule_threads("train_classifier")
    resources:
        **rule_resources_of("train_classifier"),
    params:
        root=data_root_of,
        # the trainer reads every key of the classifier section
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            train_split=SPLITS["train"],
            val_split=SPLITS["val"],
            settings=config["classifier"],
            seed=config["seed"],
            device=config["device"],
        ),
        # Kept beside the outputs, not among them, so a killed job's state survives for the rerun.
        resume=f"{RUN}/classifier/resume/last.pt",
    script:
        "../scripts/train_classifier.py"
