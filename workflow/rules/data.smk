# Data: the synthetic VOC-layout tree (when data.source is synthetic) and the image-level labels.


if config["data"]["source"] == "synthetic":

    rule prepare_data:
        output:
            directory(f"{RUN}/data"),
        params:
            data=config["data"],
            synthetic=config["synthetic"],
            seed=config["seed"],
        log:
            f"{RUN}/logs/prepare_data.log",
        benchmark:
            f"{RUN}/benchmarks/prepare_data.tsv"
        threads: 8
        conda:
            ENV
        script:
            "../scripts/prepare_data.py"


rule class_labels:
    input:
        **dataset_inputs(),
    output:
        f"{RUN}/labels/cls_labels.npy",
    params:
        root=data_root_of,
        layout=LAYOUT,
        classes=CLASSES,
        splits=all_splits(config),
    log:
        f"{RUN}/logs/class_labels.log",
    benchmark:
        f"{RUN}/benchmarks/class_labels.tsv"
    threads: 8
    conda:
        ENV
    script:
        "../scripts/class_labels.py"
