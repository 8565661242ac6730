import os

from mctformer.logs import redirect_to_log
from mctformer.stages.report import DatasetRef, ReportFiles, ReportOutputs, report_stage

params, inputs, output = snakemake.params, snakemake.input, snakemake.output
seeds = iter(inputs.seed_bests)  # expand() order: split-major, then variant
predicted_seeds = iter(inputs.predicted_seed_bests)  # likewise; empty unless seeds.labels has predicted
files = ReportFiles(
    seed_bests={split: {variant: next(seeds) for variant in params.variants} for split in params.seed_splits},
    seed_plots=dict(zip(params.seed_splits, inputs.seed_plots)),
    predicted_seed_bests={
        split: {variant: next(predicted_seeds) for variant in params.variants}
        for split in (params.seed_splits if inputs.predicted_seed_bests else [])
    },
    label_evaluation=inputs.label_evaluation[0] if inputs.label_evaluation else None,
    mask_summaries=dict(zip(params.mask_splits, inputs.mask_summaries)),
    mask_tables=dict(zip(params.mask_splits, inputs.mask_tables)),
    ablation_table=inputs.ablation_table[0] if inputs.ablation_table else None,
    label_stats=inputs.label_stats,
    refinement_files=params.refinements,
    deeplab_summaries={
        model: dict(zip(("pred", "pred_crf"), inputs.deeplab_summaries[2 * index : 2 * index + 2]))
        for index, model in enumerate(params.deeplab_models)
    },
    deeplab_tables=dict(zip(params.deeplab_models, inputs.deeplab_tables)),
    benchmarks=list(inputs.benchmarks),
    example_maps=inputs.example_maps,
    example_masks=inputs.example_masks,
    example_predictions=dict(zip(("pred", "pred_crf"), inputs.example_predictions)),
    replicate_summaries=list(inputs.replicate_summaries),
    training_curves=dict(zip(params.trainers, inputs.training_curves)),
)
outputs = ReportOutputs(
    summary=output.summary,
    report=output.report,
    figure_dir=os.path.dirname(output.seed_ablation),
    replicates_plot=output.get("replicates_plot"),
)
with redirect_to_log(snakemake.log[0]):
    report_stage(
        dataset=DatasetRef(params.root, params.layout, tuple(params.classes)),
        files=files,
        outputs=outputs,
        refinement=params.refinement,
        psa_variant=params.psa_variant,
        deeplab_split=params.deeplab_split,
        label_threshold=params.label_threshold,
        examples=params.examples,
        replicate_seeds=params.replicate_seeds,
        config=snakemake.config,
    )
