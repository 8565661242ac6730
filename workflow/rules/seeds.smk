# Localization maps (seeds) from the classifier, and their evaluation by a background-threshold sweep.


rule extract_maps:
    input:
        **dataset_inputs(),
        labels=rules.class_labels.output[0],
        checkpoint=rules.train_classifier.output.checkpoint,
    output:
        maps=sharded_directories(
            "extract_maps", expand(REP_FILES.maps("{variant}"), variant=VARIANTS, allow_missing=True)
        ),
        overlays=sharded_directories("extract_maps", REP_FILES.maps("overlays")),
    log:
        sharded_log("extract_maps"),
    benchmark:
        sharded_benchmark("extract_maps")
    conda:
        ENV
    threads: rule_threads("extract_maps")
    resources:
        **rule_resources_of("extract_maps"),
    params:
        root=data_root_of,
        variants=VARIANTS,
        # every maps key but variants (the outputs), the chain's model's
        config_keys=lambda wildcards: dict(
            layout=LAYOUT,
            classes=CLASSES,
            splits=extraction_splits(),
            **device_keys("extract_maps"),
            version=chain_config(wildcards)["classifier"]["version"],
            **maps_extraction_keys(chain_config(wildcards)),
        ),
    script:
        "../scripts/extract_maps.py"


rule evaluate_seeds:
    input:
        **dataset_inputs(),
        labels=rules.class_labels.output[0],
        maps=expand(REP_FILES.maps("{variant}"), variant=VARIANTS, allow_missing=True),
    output:
        sweeps=expand(REP_FILES.seed_sweep("{{split}}", "{variant}"), variant=VARIANTS, allow_missing=True),
        bests=expand(REP_FILES.seed_best("{{split}}", "{variant}"), variant=VARIANTS, allow_missing=True),
        plot=REP_FILES.seed_plot("{split}"),
    log:
        REP_FILES.log("evaluate_seeds_{split}"),
    benchmark:
        REP_FILES.benchmark("evaluate_seeds_{split}")
    wildcard_constraints:
        split="|".join(SPLITS["seed_eval"]),
    conda:
        ENV
    threads: rule_threads("evaluate_seeds")
    resources:
        **rule_resources_of("evaluate_seeds"),
    params:
        root=data_root_of,
        variants=VARIANTS,
        config_keys=dict(
            layout=LAYOUT, classes=CLASSES, **section_keys("seeds", *in_section_order("seeds", SEED_SWEEP_KEYS))
        ),
    script:
        "../scripts/evaluate_seeds.py"


# seeds.labels: predicted: the same extraction and sweep, on the seed_eval splits, with the classes the classifier
# predicts (rules.predict_labels) in place of the ground-truth ones; what a run gives on images without labels.
use rule extract_maps as extract_maps_predicted with:
    input:
        **dataset_inputs(),
        labels=REP_FILES.predicted_labels(),
        checkpoint=rules.train_classifier.output.checkpoint,
    output:
        maps=directory(expand(REP_FILES.predicted_maps("{variant}"), variant=VARIANTS, allow_missing=True)),
        overlays=directory(REP_FILES.predicted_maps("overlays")),
    log:
        REP_FILES.log("extract_maps_predicted"),
    benchmark:
        REP_FILES.benchmark("extract_maps_predicted")
    params:
        root=data_root_of,
        variants=VARIANTS,
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            splits=SPLITS["seed_eval"],
            **device_keys("extract_maps"),
            version=VERSION,
            **section_keys("maps", *in_section_order("maps", MAPS_EXTRACTION_KEYS)),
        ),


use rule evaluate_seeds as evaluate_seeds_predicted with:
    input:
        **dataset_inputs(),
        labels=REP_FILES.predicted_labels(),
        maps=rules.extract_maps_predicted.output.maps,
    output:
        sweeps=expand(
            REP_FILES.seed_sweep("{{split}}", "{variant}", predicted=True), variant=VARIANTS, allow_missing=True
        ),
        bests=expand(
            REP_FILES.seed_best("{{split}}", "{variant}", predicted=True), variant=VARIANTS, allow_missing=True
        ),
        plot=REP_FILES.seed_plot("{split}", predicted=True),
    log:
        REP_FILES.log("evaluate_seeds_predicted_{split}"),
    benchmark:
        REP_FILES.benchmark("evaluate_seeds_predicted_{split}")
