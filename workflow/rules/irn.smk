# IRN beside PSA: confident labels by CRF, the class-boundary network, the walk on its boundaries,
# the masks' evaluation (evaluate_masks' script and metric code), and `snakemake compare_refinements`:
# both refinements on the same seeds, DeepLab on each, one table (refinements.{json,md}).
IRN = f"{REP}/irn"
IRN_MASKS = PSEUDO_MASKS["irn"]
IRN_MAPS = REP_FILES.maps(config["irn"]["seed_variant"])
IRN_LABELS = f"{IRN}/labels"
IRN_LABEL_STATS = f"{IRN}/label_stats.json"


rule ir_labels:
    input:
        **dataset_inputs(),
        maps=IRN_MAPS,
    output:
        labels=sharded_directories("ir_labels", IRN_LABELS),
        stats=sharded_file("ir_labels", IRN_LABEL_STATS),
    log:
        sharded_log("ir_labels"),
    benchmark:
        sharded_benchmark("ir_labels")
    conda:
        ENV_CRF
    threads: rule_threads("ir_labels")
    resources:
        **rule_resources_of("ir_labels"),
    params:
        root=data_root_of,
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            palette=config["data"]["palette"],
            split=SPLITS["train"],
            **section_keys("irn", "max_images", "conf_fg_thres", "conf_bg_thres", "crf", "label_workers"),
        ),
    script:
        "../scripts/ir_labels.py"


rule train_irn:
    input:
        **dataset_inputs(),
        **pretrained_input("irn"),
        labels=IRN_LABELS,
    output:
        checkpoint=f"{IRN}/boundary.pt",
        log_csv=f"{IRN}/boundary_log.csv",
        log_jsonl=f"{IRN}/boundary_log.jsonl",
    log:
        REP_FILES.log("train_irn"),
    benchmark:
        REP_FILES.benchmark("train_irn")
    conda:
        ENV
    threads: rule_threads("train_irn")
    resources:
        **rule_resources_of("train_irn"),
    params:
        root=data_root_of,
        resume=f"{IRN}/resume/last.pt",
        config_keys=lambda wildcards: dict(
            layout=LAYOUT,
            classes=CLASSES,
            split=SPLITS["train"],
            max_images=config["irn"]["max_images"],
            settings=section_keys("irn", *IRN_TRAINING_KEYS),
            seed=replicate_seed(wildcards),
            **device_keys("train_irn"),
            tensorboard=config["logging"]["tensorboard"],
        ),
    script:
        "../scripts/train_irn.py"


rule irn_walk:
    input:
        **dataset_inputs(),
        maps=IRN_MAPS,
        checkpoint=rules.train_irn.output.checkpoint,
    output:
        sharded_directories("irn_walk", IRN_MASKS),
    log:
        sharded_log("irn_walk"),
    benchmark:
        sharded_benchmark("irn_walk")
    conda:
        ENV
    threads: rule_threads("irn_walk")
    resources:
        **rule_resources_of("irn_walk"),
    params:
        root=data_root_of,
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            palette=config["data"]["palette"],
            splits=irn_walk_splits(),
            **device_keys("irn_walk"),
            **section_keys(
                "irn",
                "backbone",
                "walk_radius",
                "beta",
                "exp_times",
                "sem_seg_bg_thres",
                "walk_scale",
                "walk_batch_size",
                "walk_amp",
            ),
        ),
    script:
        "../scripts/irn_walk.py"


use rule evaluate_masks as evaluate_irn_masks with:
    input:
        **dataset_inputs(),
        masks=IRN_MASKS,
    output:
        table=REP_FILES.mask_evaluation("irn", "{split}", "csv"),
        summary=REP_FILES.mask_evaluation("irn", "{split}"),
        plot=REP_FILES.mask_evaluation("irn", "{split}", "png"),
    log:
        REP_FILES.log("evaluate_irn_masks_{split}"),
    benchmark:
        REP_FILES.benchmark("evaluate_irn_masks_{split}")
    wildcard_constraints:
        split="|".join(config["irn"]["eval_splits"]),
    threads: rule_threads("evaluate_irn_masks")
    resources:
        **rule_resources_of("evaluate_irn_masks"),
    params:
        root=data_root_of,
        config_keys=dict(layout=LAYOUT, classes=CLASSES, title="IRN masks"),


# a target: replicate 0's refinements
COMPARED = comparison_files(config, RUN_FILES, ["psa", "irn"], ["psa", "irn"])


rule compare_refinements:
    input:
        flat_paths(COMPARED),
    output:
        json=f"{RUN}/refinements.json",
        markdown=f"{RUN}/refinements.md",
    log:
        RUN_FILES.log("compare_refinements"),
    benchmark:
        RUN_FILES.benchmark("compare_refinements")
    conda:
        ENV
    threads: rule_threads("compare_refinements")
    resources:
        **rule_resources_of("compare_refinements"),
    params:
        files=COMPARED,
        config_keys=dict(mask_split=config["psa"]["eval_splits"][0], deeplab_split=config["deeplab"]["eval_split"]),
    script:
        "../scripts/compare_refinements.py"
