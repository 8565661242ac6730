# PSA: confident labels by CRF, AffinityNet, random walk, pseudo-mask evaluation.
PSA_LABELS = f"{REP}/psa/labels"
PSA_LABEL_STATS = f"{REP}/psa/label_stats.json"


rule psa_labels:
    input:
        **dataset_inputs(),
        maps=REP_FILES.maps(config["psa"]["seed_variant"]),
    output:
        labels=sharded_directories("psa_labels", PSA_LABELS),
        stats=sharded_file("psa_labels", PSA_LABEL_STATS),
    log:
        sharded_log("psa_labels"),
    benchmark:
        sharded_benchmark("psa_labels")
    conda:
        ENV_CRF
    threads: rule_threads("psa_labels")
    resources:
        **rule_resources_of("psa_labels"),
    params:
        root=data_root_of,
        # only the keys this stage reads, so that e.g. editing logt reruns the walk alone
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            palette=config["data"]["palette"],
            split=SPLITS["train"],
            **section_keys("psa", "alpha_low", "alpha_high", "max_images", "crf", "crf_image", "workers"),
            **section_keys("affinity", "grid_labels"),
        ),
    script:
        "../scripts/psa_labels.py"


rule train_affinity:
    input:
        **dataset_inputs(),
        **pretrained_input("affinity"),
        labels=PSA_LABELS,
    output:
        checkpoint=REP_FILES.affinity_checkpoint(),
        log_csv=f"{REP}/psa/affinity_log.csv",
        log_jsonl=f"{REP}/psa/affinity_log.jsonl",
    log:
        REP_FILES.log("train_affinity"),
    benchmark:
        REP_FILES.benchmark("train_affinity")
    conda:
        ENV
    threads: rule_threads("train_affinity")
    resources:
        **rule_resources_of("train_affinity"),
    params:
        root=data_root_of,
        resume=f"{REP}/psa/resume/last.pt",
        # the trainer reads every key of the affinity section
        config_keys=lambda wildcards: dict(
            layout=LAYOUT,
            classes=CLASSES,
            split=SPLITS["train"],
            max_images=config["psa"]["max_images"],
            settings=config["affinity"],
            seed=replicate_seed(wildcards),
            **device_keys("train_affinity"),
            tensorboard=config["logging"]["tensorboard"],
        ),
    script:
        "../scripts/train_affinity.py"


rule random_walk:
    input:
        **dataset_inputs(),
        maps=REP_FILES.maps(config["psa"]["seed_variant"]),
        checkpoint=rules.train_affinity.output.checkpoint,
        best=best_threshold_file(),
    output:
        sharded_directories("random_walk", PSEUDO_MASKS["psa"]),
    log:
        sharded_log("random_walk"),
    benchmark:
        sharded_benchmark("random_walk")
    conda:
        ENV
    threads: rule_threads("random_walk")
    resources:
        **rule_resources_of("random_walk"),
    params:
        root=data_root_of,
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            palette=config["data"]["palette"],
            splits=random_walk_splits(),
            **device_keys("random_walk"),
            **section_keys("psa", "background", "beta", "logt", "walk_scale", "batch_size", "walk_amp"),
            **section_keys("affinity", "backbone", "radius", "pair_sources"),
        ),
    script:
        "../scripts/random_walk.py"


rule evaluate_masks:
    input:
        **dataset_inputs(),
        masks=PSEUDO_MASKS["psa"],
    output:
        table=REP_FILES.mask_evaluation("psa", "{split}", "csv"),
        summary=REP_FILES.mask_evaluation("psa", "{split}"),
        plot=REP_FILES.mask_evaluation("psa", "{split}", "png"),
    log:
        REP_FILES.log("evaluate_masks_{split}"),
    benchmark:
        REP_FILES.benchmark("evaluate_masks_{split}")
    wildcard_constraints:
        split="|".join(config["psa"]["eval_splits"]),
    conda:
        ENV
    threads: rule_threads("evaluate_masks")
    resources:
        **rule_resources_of("evaluate_masks"),
    params:
        root=data_root_of,
        config_keys=dict(layout=LAYOUT, classes=CLASSES, title="pseudo masks"),
    script:
        "../scripts/evaluate_masks.py"


rule psa_ablation:
    input:
        **dataset_inputs(),
        maps=REP_FILES.maps(config["psa"]["seed_variant"]),
        best=best_threshold_file(),
        learned=REP_FILES.mask_evaluation("psa", "{split}"),
    output:
        REP_FILES.crf_only_table("{split}"),
    log:
        REP_FILES.log("psa_ablation_{split}"),
    benchmark:
        REP_FILES.benchmark("psa_ablation_{split}")
    wildcard_constraints:
        split="|".join(config["psa"]["eval_splits"]),
    conda:
        ENV_CRF
    threads: rule_threads("psa_ablation")
    resources:
        **rule_resources_of("psa_ablation"),
    params:
        root=data_root_of,
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            **section_keys("psa", "background", "beta", "logt", "walk_scale", "crf", "colour_sigma"),
            **section_keys("affinity", "backbone", "radius", "pair_sources"),
        ),
    script:
        "../scripts/psa_ablation.py"
