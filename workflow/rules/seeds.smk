# Localization maps (seeds) from the classifier, and their evaluation by a background-threshold sweep.


rule extract_maps:
    input:
        **dataset_inputs(),
        labels=rules.class_labels.output[0],
        checkpoint=rules.train_classifier.output.checkpoint,
    output:
        maps=directory(expand(f"{REP}/maps/{{variant}}", variant=VARIANTS, allow_missing=True)),
        overlays=directory(f"{REP}/maps/overlays"),
    log:
        f"{REP}/logs/extract_maps.log",
    benchmark:
        f"{REP}/benchmarks/extract_maps.tsv"
    conda:
        ENV
    threads: rule_threads("extract_maps")
    resources:
        **rule_resources_of("extract_maps"),
    params:
        root=data_root_of,
        variants=VARIANTS,
        # every maps key but variants (the outputs)
        config_keys=dict(
            layout=LAYOUT,
            classes=CLASSES,
            splits=extraction_splits(),
            **device_keys("extract_maps"),
            version=VERSION,
            **section_keys("maps", *in_section_order("maps", MAPS_EXTRACTION_KEYS)),
        ),
    script:
        "../scripts/extract_maps.py"


rule evaluate_seeds:
    input:
        **dataset_inputs(),
        labels=rules.class_labels.output[0],
        maps=rules.extract_maps.output.maps,
    output:
        sweeps=expand(f"{REP}/seeds/{{{{split}}}}/{{variant}}/sweep.csv", variant=VARIANTS, allow_missing=True),
        bests=expand(f"{REP}/seeds/{{{{split}}}}/{{variant}}/best.json", variant=VARIANTS, allow_missing=True),
        plot=f"{REP}/seeds/{{split}}/sweep.png",
    log:
        f"{REP}/logs/evaluate_seeds_{{split}}.log",
    benchmark:
        f"{REP}/benchmarks/evaluate_seeds_{{split}}.tsv"
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
        config_keys=dict(layout=LAYOUT, classes=CLASSES, **config["seeds"]),
    script:
        "../scripts/evaluate_seeds.py"
