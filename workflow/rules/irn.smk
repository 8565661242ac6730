# IRN beside PSA: confident labels by CRF, the class-boundary network, the walk on its boundaries,
# the masks' evaluation (evaluate_masks' script and metric code), and `snakemake compare_refinements`:
# both refinements on the same seeds, DeepLab on each, one table (refinements.{json,md}).
IRN = f"{REP}/irn"
IRN_MASKS = PSEUDO_MASKS["irn"]
IRN_MAPS = f"{REP}/maps/{config['irn']['seed_variant']}"


rule ir_labels:
    input:
        **dataset_inputs(),
        maps=IRN_MAPS,
    output:
        labels=directory(f"{IRN}/labels"),
        stats=f"{IRN}/label_stats.json",
    log:
        f"{REP}/logs/ir_labels.log",
    benchmark:
        f"{REP}/benchmarks/ir_labels.tsv"
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
        labels=rules.ir_labels.output.labels,
    output:
        checkpoint=f"{IRN}/boundary.pt",
        log_csv=f"{IRN}/boundary_log.csv",
    log:
        f"{REP}/logs/train_irn.log",
    benchmark:
        f"{REP}/benchmarks/train_irn.tsv"
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
            device=config["device"],
        ),
    script:
        "../scripts/train_irn.py"


rule irn_walk:
    input:
        **dataset_inputs(),
        maps=IRN_MAPS,
        checkpoint=rules.train_irn.output.checkpoint,
    output:
        directory(IRN_MASKS),
    log:
        f"{REP}/logs/irn_walk.log",
    benchmark:
        f"{REP}/benchmarks/irn_walk.tsv"
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
            device=config["device"],
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
        masks=rules.irn_walk.output[0],
    output:
        table=f"{REP}/masks/irn/eval_{{split}}.csv",
        summary=f"{REP}/masks/irn/eval_{{split}}.json",
        plot=f"{REP}/masks/irn/eval_{{split}}.png",
    log:
        f"{REP}/logs/evaluate_irn_masks_{{split}}.log",
    benchmark:
        f"{REP}/benchmarks/evaluate_irn_masks_{{split}}.tsv"
    wildcard_constraints:
        split="|".join(config["irn"]["eval_splits"]),
    threads: rule_threads("evaluate_irn_masks")
    resources:
        **rule_resources_of("evaluate_irn_masks"),
    params:
        root=data_root_of,
        config_keys=dict(layout=LAYOUT, classes=CLASSES, title="IRN masks"),


# a target: replicate 0's refinements
COMPARED = comparison_files(["psa", "irn"], ["psa", "irn"], RUN)


rule compare_refinements:
    input:
        flat_paths(COMPARED),
    output:
        json=f"{RUN}/refinements.json",
        markdown=f"{RUN}/refinements.md",
    log:
        f"{RUN}/logs/compare_refinements.log",
    benchmark:
        f"{RUN}/benchmarks/compare_refinements.tsv"
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
