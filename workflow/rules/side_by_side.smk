# `snakemake side_by_side`: the run's own model (config.yaml: V2) and each side_by_side.models entry (MCTformer+) through
# the same chain from the same prepared data: seeds -> PSA and IRN masks -> DeepLab on the PSA masks, once per replicate
# seed; one table of mean +/- std over the replicates beside the papers' numbers (docs/mctformer-plus.md).
# A model's chain is the run's own rules under results/<run>/side_by_side/<model> (the {replicate} wildcard's model
# part, common.smk, with side_by_side_table_files); only train_classifier and extract_maps read its classifier and maps sections.


rule side_by_side:
    input:
        lambda wildcards: flat_paths(side_by_side_table_files()),
    output:
        json=f"{RUN}/side_by_side/side_by_side.json",
        markdown=f"{RUN}/side_by_side/side_by_side.md",
        figure=f"{RUN}/side_by_side/side_by_side.png",
    log:
        f"{RUN}/side_by_side/logs/side_by_side.log",
    benchmark:
        f"{RUN}/side_by_side/benchmarks/side_by_side.tsv"
    conda:
        ENV
    threads: rule_threads("side_by_side")
    resources:
        **rule_resources_of("side_by_side"),
    params:
        files=side_by_side_table_files,
        config_keys=lambda wildcards: dict(
            seeds=REPLICATE_SEEDS,
            versions={
                config["classifier"]["version"]: config["classifier"]["version"],
                **{name: model_config(name)["classifier"]["version"] for name in MODEL_OVERLAYS},
            },
            seed_variant=config["psa"]["seed_variant"],
            mask_split=config["psa"]["eval_splits"][0],
            deeplab_split=config["deeplab"]["eval_split"],
        ),
    script:
        "../scripts/side_by_side.py"
