# The paper's ablations (Sec. 4.3) as four targets outside `rule all`: `snakemake ablation_layers`
# (Fig. 6), `ablation_heads` (Table 7), `ablation_maps` (Table 5), `ablation_segmentation` (Table 6);
# `snakemake ablations` runs the four and joins their sections into ablations/ablations.md. Each
# reuses the run's stages through `use rule ... with:` (same script, keys, threads, resources and
# env; only the paths and the one thing the ablation varies change) and what the run already made.
# Every replicate runs each ablation (rules ablation_<name>_replicate, with the {replicate} wildcard) under its own
# ablations/ folder, logs and benchmarks included: results/<run>/ablations/ for replicate 0. With replicates > 1,
# ablation_replicates joins the replicates' tables into mean +/- std under results/<run>/ablations/replicates/.
# The four targets themselves (input-only rules, like `all`) are in the Snakefile.
# Paths and helpers: common.smk (ABLATIONS, ablation_files, ablation_map_dir, heads_checkpoint, ...).


# ---------------------------------------------------------------- Fig. 6 ---


rule ablation_layers_replicate:
    input:
        **dataset_inputs(),
        labels=rules.class_labels.output[0],
        checkpoint=rules.train_classifier.output.checkpoint,
    output:
        table=f"{ABLATIONS}/layers.csv",
        sweeps=f"{ABLATIONS}/layers_sweeps.csv",
        plot=f"{ABLATIONS}/layers.png",
        section=f"{ABLATIONS}/layers.md",
    log:
        ABLATION_FILES.log("ablation_layers"),
    benchmark:
        ABLATION_FILES.benchmark("ablation_layers")
    conda:
        ENV
    threads: rule_threads("ablation_layers_replicate")
    resources:
        **rule_resources_of("ablation_layers_replicate"),
    params:
        root=data_root_of,
        # the maps keys of one extraction (every K instead of last_k; the attention only) and the sweep's
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            splits=SEED_SPLITS,
            **device_keys("ablation_layers_replicate"),
            version=VERSION,
            **section_keys(
                "maps",
                "last_k",
                "scales",
                "flip",
                "batch_size",
                "resize",
                "remainder",
                "position_embedding",
                "amp",
                "storage_dtype",
            ),
            **section_keys("seeds", *in_section_order("seeds", SEED_SWEEP_KEYS)),
        ),
    script:
        "../scripts/ablation_layers.py"


# ---------------------------------------------------------------- Table 7 --


use rule train_classifier as ablation_heads_train_classifier with:
    output:
        checkpoint=f"{ABLATIONS}/heads/{{pooling}}/classifier/checkpoint.pt",
        log_csv=f"{ABLATIONS}/heads/{{pooling}}/classifier/log.csv",
        log_jsonl=f"{ABLATIONS}/heads/{{pooling}}/classifier/log.jsonl",
    log:
        ABLATION_FILES.log("heads_train_classifier_{pooling}"),
    benchmark:
        ABLATION_FILES.benchmark("heads_train_classifier_{pooling}")
    wildcard_constraints:
        pooling="avg|max|fc",
    params:
        config_keys=lambda wildcards: with_token_pooling(
            rules.train_classifier.params.config_keys(wildcards), wildcards.pooling
        ),
        resume=lambda wildcards: at_replicate(
            f"{ABLATIONS}/heads/{wildcards.pooling}/classifier/resume/last.pt", wildcards.replicate
        ),


use rule extract_maps as ablation_heads_extract_maps with:
    input:
        **dataset_inputs(),
        labels=rules.class_labels.output[0],
        checkpoint=heads_checkpoint,
    output:
        maps=directory([f"{ABLATIONS}/heads/{{pooling}}/maps/attention"]),
        overlays=directory(f"{ABLATIONS}/heads/{{pooling}}/maps/overlays"),
    log:
        ABLATION_FILES.log("heads_extract_maps_{pooling}"),
    benchmark:
        ABLATION_FILES.benchmark("heads_extract_maps_{pooling}")
    wildcard_constraints:
        pooling="avg|max|fc",
    params:
        variants=["attention"],
        # only the images the seeds are scored on
        config_keys=lambda wildcards: {**rules.extract_maps.params.config_keys(wildcards), "splits": SEED_SPLITS},


use rule evaluate_seeds as ablation_heads_evaluate_seeds with:
    input:
        **dataset_inputs(),
        labels=rules.class_labels.output[0],
        maps=rules.ablation_heads_extract_maps.output.maps,
    output:
        sweeps=[f"{ABLATIONS}/heads/{{pooling}}/seeds/{{split}}/attention/sweep.csv"],
        bests=[f"{ABLATIONS}/heads/{{pooling}}/seeds/{{split}}/attention/best.json"],
        plot=f"{ABLATIONS}/heads/{{pooling}}/seeds/{{split}}/sweep.png",
    log:
        ABLATION_FILES.log("heads_evaluate_seeds_{pooling}_{split}"),
    benchmark:
        ABLATION_FILES.benchmark("heads_evaluate_seeds_{pooling}_{split}")
    wildcard_constraints:
        pooling="avg|max|fc",
        split="|".join(SEED_SPLITS),
    params:
        variants=["attention"],


rule ablation_heads_replicate:
    input:
        # pooling-major, then split
        bests=expand(
            f"{ABLATIONS}/heads/{{pooling}}/seeds/{{split}}/attention/best.json",
            pooling=POOLINGS,
            split=SEED_SPLITS,
            allow_missing=True,
        ),
    output:
        table=f"{ABLATIONS}/heads.csv",
        plot=f"{ABLATIONS}/heads.png",
        section=f"{ABLATIONS}/heads.md",
    log:
        ABLATION_FILES.log("ablation_heads"),
    benchmark:
        ABLATION_FILES.benchmark("ablation_heads")
    conda:
        ENV
    threads: rule_threads("ablation_heads_replicate")
    resources:
        **rule_resources_of("ablation_heads_replicate"),
    params:
        splits=SEED_SPLITS,
        config_keys=dict(
            version=VERSION,
            poolings=POOLINGS,
            config_pooling=config["classifier"]["token_pooling"],
        ),
    script:
        "../scripts/ablation_heads.py"


# ---------------------------------------------------------------- Table 5 --

if EXTRA_MAP_VARIANTS:

    use rule extract_maps as ablation_maps_extract_maps with:
        input:
            **dataset_inputs(),
            labels=rules.class_labels.output[0],
            checkpoint=rules.train_classifier.output.checkpoint,
        output:
            maps=directory(expand(f"{ABLATIONS}/maps/maps/{{variant}}", variant=EXTRA_MAP_VARIANTS, allow_missing=True)),
            overlays=directory(f"{ABLATIONS}/maps/maps/overlays"),
        log:
            ABLATION_FILES.log("maps_extract_maps"),
        benchmark:
            ABLATION_FILES.benchmark("maps_extract_maps")
        params:
            variants=EXTRA_MAP_VARIANTS,

    use rule evaluate_seeds as ablation_maps_evaluate_seeds with:
        input:
            **dataset_inputs(),
            labels=rules.class_labels.output[0],
            maps=rules.ablation_maps_extract_maps.output.maps,
        output:
            sweeps=expand(
                f"{ABLATIONS}/maps/seeds/{{{{split}}}}/{{variant}}/sweep.csv",
                variant=EXTRA_MAP_VARIANTS,
                allow_missing=True,
            ),
            bests=expand(
                f"{ABLATIONS}/maps/seeds/{{{{split}}}}/{{variant}}/best.json",
                variant=EXTRA_MAP_VARIANTS,
                allow_missing=True,
            ),
            plot=f"{ABLATIONS}/maps/seeds/{{split}}/sweep.png",
        log:
            ABLATION_FILES.log("maps_evaluate_seeds_{split}"),
        benchmark:
            ABLATION_FILES.benchmark("maps_evaluate_seeds_{split}")
        params:
            variants=EXTRA_MAP_VARIANTS,


rule ablation_maps_replicate:
    input:
        # variant-major, then split
        bests=[ablation_seed_best(split, variant) for variant in ALL_MAP_VARIANTS for split in SEED_SPLITS],
    output:
        table=f"{ABLATIONS}/maps.csv",
        plot=f"{ABLATIONS}/maps.png",
        section=f"{ABLATIONS}/maps.md",
    log:
        ABLATION_FILES.log("ablation_maps"),
    benchmark:
        ABLATION_FILES.benchmark("ablation_maps")
    conda:
        ENV
    threads: rule_threads("ablation_maps_replicate")
    resources:
        **rule_resources_of("ablation_maps_replicate"),
    params:
        variants=ALL_MAP_VARIANTS,
        splits=SEED_SPLITS,
        config_keys=dict(version=VERSION),
    script:
        "../scripts/ablation_maps.py"


# ---------------------------------------------------------------- Table 6 --
# A variant other than psa.seed_variant goes through the run's PSA and DeepLab rules under
# ablations/segmentation/<variant>/, with its own maps and best threshold.


use rule psa_labels as ablation_psa_labels with:
    input:
        **dataset_inputs(),
        maps=lambda wildcards: at_replicate(ablation_map_dir(wildcards.variant), wildcards.replicate),
    output:
        labels=directory(f"{SEGMENTATION}/psa/labels"),
        stats=f"{SEGMENTATION}/psa/label_stats.json",
    log:
        ABLATION_FILES.log("segmentation_psa_labels_{variant}"),
    benchmark:
        ABLATION_FILES.benchmark("segmentation_psa_labels_{variant}")
    wildcard_constraints:
        variant="|".join(ALL_MAP_VARIANTS),


use rule train_affinity as ablation_train_affinity with:
    input:
        **dataset_inputs(),
        **pretrained_input("affinity"),
        labels=rules.ablation_psa_labels.output.labels,
    output:
        checkpoint=f"{SEGMENTATION}/psa/affinity.pt",
        log_csv=f"{SEGMENTATION}/psa/affinity_log.csv",
        log_jsonl=f"{SEGMENTATION}/psa/affinity_log.jsonl",
    log:
        ABLATION_FILES.log("segmentation_train_affinity_{variant}"),
    benchmark:
        ABLATION_FILES.benchmark("segmentation_train_affinity_{variant}")
    wildcard_constraints:
        variant="|".join(ALL_MAP_VARIANTS),
    params:
        resume=lambda wildcards: at_replicate(
            f"{SEGMENTATION}/psa/resume/last.pt".replace("{variant}", wildcards.variant), wildcards.replicate
        ),


use rule random_walk as ablation_random_walk with:
    input:
        **dataset_inputs(),
        maps=lambda wildcards: at_replicate(ablation_map_dir(wildcards.variant), wildcards.replicate),
        checkpoint=rules.ablation_train_affinity.output.checkpoint,
        best=segmentation_best_threshold,
    output:
        directory(f"{SEGMENTATION}/masks/pseudo"),
    log:
        ABLATION_FILES.log("segmentation_random_walk_{variant}"),
    benchmark:
        ABLATION_FILES.benchmark("segmentation_random_walk_{variant}")
    wildcard_constraints:
        variant="|".join(ALL_MAP_VARIANTS),


use rule evaluate_masks as ablation_evaluate_masks with:
    input:
        **dataset_inputs(),
        masks=rules.ablation_random_walk.output[0],
    output:
        table=f"{SEGMENTATION}/masks/eval_{{split}}.csv",
        summary=f"{SEGMENTATION}/masks/eval_{{split}}.json",
        plot=f"{SEGMENTATION}/masks/eval_{{split}}.png",
    log:
        ABLATION_FILES.log("segmentation_evaluate_masks_{variant}_{split}"),
    benchmark:
        ABLATION_FILES.benchmark("segmentation_evaluate_masks_{variant}_{split}")
    wildcard_constraints:
        variant="|".join(ALL_MAP_VARIANTS),
        split="|".join(config["psa"]["eval_splits"]),


use rule train_deeplab as ablation_train_deeplab with:
    input:
        **dataset_inputs(),
        **pretrained_input("deeplab"),
        masks=rules.ablation_random_walk.output[0],
    output:
        checkpoint=f"{SEGMENTATION}/deeplab/checkpoint.pt",
        log_csv=f"{SEGMENTATION}/deeplab/log.csv",
        log_jsonl=f"{SEGMENTATION}/deeplab/log.jsonl",
    log:
        ABLATION_FILES.log("segmentation_train_deeplab_{variant}"),
    benchmark:
        ABLATION_FILES.benchmark("segmentation_train_deeplab_{variant}")
    wildcard_constraints:
        variant="|".join(ALL_MAP_VARIANTS),
    params:
        resume=lambda wildcards: at_replicate(
            f"{SEGMENTATION}/deeplab/resume/last.pt".replace("{variant}", wildcards.variant), wildcards.replicate
        ),


use rule infer_deeplab as ablation_infer_deeplab with:
    input:
        **dataset_inputs(),
        checkpoint=rules.ablation_train_deeplab.output.checkpoint,
    output:
        pred=directory(f"{SEGMENTATION}/deeplab/pred"),
        pred_crf=directory(f"{SEGMENTATION}/deeplab/pred_crf"),
    log:
        ABLATION_FILES.log("segmentation_infer_deeplab_{variant}"),
    benchmark:
        ABLATION_FILES.benchmark("segmentation_infer_deeplab_{variant}")
    wildcard_constraints:
        variant="|".join(ALL_MAP_VARIANTS),


use rule evaluate_deeplab as ablation_evaluate_deeplab with:
    input:
        **dataset_inputs(),
        masks=f"{SEGMENTATION}/deeplab/{{folder}}",
    output:
        table=f"{SEGMENTATION}/deeplab/eval_{{folder}}.csv",
        summary=f"{SEGMENTATION}/deeplab/eval_{{folder}}.json",
        plot=f"{SEGMENTATION}/deeplab/eval_{{folder}}.png",
    log:
        ABLATION_FILES.log("segmentation_evaluate_deeplab_{variant}_{folder}"),
    benchmark:
        ABLATION_FILES.benchmark("segmentation_evaluate_deeplab_{variant}_{folder}")
    wildcard_constraints:
        variant="|".join(ALL_MAP_VARIANTS),
        folder="pred|pred_crf",
    params:
        title=lambda wildcards: f"DeepLab on {wildcards.variant} masks ({'with CRF' if wildcards.folder == 'pred_crf' else 'no CRF'})",


rule ablation_segmentation_replicate:
    input:
        seed_bests=[ablation_seed_best(SEED_SPLITS[0], variant) for variant in SEGMENTATION_VARIANTS],
        # variant-major, then split / folder
        mask_summaries=[
            f"{segmentation_chain(variant)}/masks/eval_{split}.json"
            for variant in SEGMENTATION_VARIANTS
            for split in config["psa"]["eval_splits"]
        ],
        deeplab_summaries=[
            f"{segmentation_chain(variant)}/deeplab/eval_{folder}.json"
            for variant in SEGMENTATION_VARIANTS
            for folder in ("pred", "pred_crf")
        ],
    output:
        table=f"{ABLATIONS}/segmentation.csv",
        plot=f"{ABLATIONS}/segmentation.png",
        section=f"{ABLATIONS}/segmentation.md",
    log:
        ABLATION_FILES.log("ablation_segmentation"),
    benchmark:
        ABLATION_FILES.benchmark("ablation_segmentation")
    conda:
        ENV
    threads: rule_threads("ablation_segmentation_replicate")
    resources:
        **rule_resources_of("ablation_segmentation_replicate"),
    params:
        variants=SEGMENTATION_VARIANTS,
        mask_splits=config["psa"]["eval_splits"],
        config_keys=dict(
            version=VERSION,
            seed_variant=config["psa"]["seed_variant"],
            seed_split=SEED_SPLITS[0],
            deeplab_split=config["deeplab"]["eval_split"],
        ),
    script:
        "../scripts/ablation_segmentation.py"


# ---------------------------------------------------------- replicates --

if len(REPLICATE_SEEDS) > 1:

    rule ablation_replicates:
        input:
            # in seed order
            tables=[f"{RUN}{replicate_suffix(seed)}/ablations/{{ablation}}.csv" for seed in REPLICATE_SEEDS],
        output:
            **ablation_files("{ablation}"),
        log:
            f"{RUN}/ablations/logs/ablation_replicates_{{ablation}}.log",
        benchmark:
            f"{RUN}/ablations/benchmarks/ablation_replicates_{{ablation}}.tsv"
        wildcard_constraints:
            ablation="|".join(ABLATION_NAMES),
        conda:
            ENV
        threads: rule_threads("ablation_replicates")
        resources:
            **rule_resources_of("ablation_replicates"),
        params:
            config_keys=dict(seeds=REPLICATE_SEEDS),
        script:
            "../scripts/ablation_replicates.py"


rule ablations:
    input:
        sections=[ablation_files(name)["section"] for name in ABLATION_NAMES],
    output:
        f"{RUN}/ablations/ablations.md",
    log:
        f"{RUN}/ablations/logs/ablations.log",
    benchmark:
        f"{RUN}/ablations/benchmarks/ablations.tsv"
    conda:
        ENV
    threads: rule_threads("ablations")
    resources:
        **rule_resources_of("ablations"),
    params:
        config_keys=dict(run_name=config["run_name"]),
    script:
        "../scripts/ablations.py"
