# Data: the dataset root (the synthetic tree, VOC / COCO built from data.archives, or a folder
# dataset checked and linked from data.folder; no rule when data.root points at a prepared root) and
# the image-level labels.


if config["data"]["source"] == "synthetic":

    rule prepare_data:
        output:
            directory(f"{RUN}/data"),
        log:
            RUN_FILES.log("prepare_data"),
        benchmark:
            RUN_FILES.benchmark("prepare_data")
        conda:
            ENV
        threads: rule_threads("prepare_data")
        resources:
            **rule_resources_of("prepare_data"),
        params:
            config_keys=dict(
                num_classes=len(CLASSES), palette=config["data"]["palette"], seed=config["seed"], **config["synthetic"]
            ),
        script:
            "../scripts/prepare_data.py"

elif config["data"]["source"] == "folder":

    rule prepare_folder:
        input:
            **folder_inputs(),
        output:
            directory(f"{RUN}/data"),
        log:
            RUN_FILES.log("prepare_folder"),
        benchmark:
            RUN_FILES.benchmark("prepare_folder")
        conda:
            ENV
        threads: rule_threads("prepare_folder")
        resources:
            **rule_resources_of("prepare_folder"),
        params:
            config_keys=dict(
                classes=CLASSES,
                splits=all_splits(config),
                train_split=SPLITS["train"],
                val_split=SPLITS["val"],
                val_fraction=config["data"]["folder"]["val_fraction"],
            ),
        script:
            "../scripts/prepare_folder.py"

elif config["data"].get("archives") and LAYOUT == "voc":

    rule prepare_voc12:
        input:
            **archive_inputs(),
        output:
            directory(f"{RUN}/data"),
        log:
            RUN_FILES.log("prepare_voc12"),
        benchmark:
            RUN_FILES.benchmark("prepare_voc12")
        conda:
            ENV
        threads: rule_threads("prepare_voc12")
        resources:
            **rule_resources_of("prepare_voc12"),
        script:
            "../scripts/prepare_voc12.py"

elif config["data"].get("archives"):

    rule prepare_coco14:
        input:
            **archive_inputs(),
        output:
            directory(f"{RUN}/data"),
        log:
            RUN_FILES.log("prepare_coco14"),
        benchmark:
            RUN_FILES.benchmark("prepare_coco14")
        conda:
            ENV
        threads: rule_threads("prepare_coco14")
        resources:
            **rule_resources_of("prepare_coco14"),
        script:
            "../scripts/prepare_coco14.py"


rule class_labels:
    input:
        **dataset_inputs(),
    output:
        f"{RUN}/labels/cls_labels.npy",
    log:
        RUN_FILES.log("class_labels"),
    benchmark:
        RUN_FILES.benchmark("class_labels")
    conda:
        ENV
    threads: rule_threads("class_labels")
    resources:
        **rule_resources_of("class_labels"),
    params:
        root=data_root_of,
        config_keys=dict(layout=LAYOUT, classes=CLASSES, splits=all_splits(config)),
    script:
        "../scripts/class_labels.py"
