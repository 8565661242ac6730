# The gather rules of the sharded per-image rules (common.smk, "Shards"; mctformer/shards.py): gather_<rule> joins the
# {shard} parts of <rule> into exactly the artifacts the unsharded rule writes, and its benchmark from the shards'.
# Defined only for a rule with resources.rules.<rule>.shards > 1: a run without shards has no gather jobs.
# The artifacts of each per-image rule: its folders (joined file by file), the confident-label stats (summed counts) and
# the VOC submission's tarball (packed from the joined folder).
GATHERED = {
    "extract_maps": dict(
        folders=[*expand(REP_FILES.maps("{variant}"), variant=VARIANTS, allow_missing=True), REP_FILES.maps("overlays")]
    ),
    "psa_labels": dict(folders=[PSA_LABELS], label_stats=PSA_LABEL_STATS),
    "random_walk": dict(folders=[PSEUDO_MASKS["psa"]]),
    "ir_labels": dict(folders=[IRN_LABELS], label_stats=IRN_LABEL_STATS),
    "irn_walk": dict(folders=[IRN_MASKS]),
    "infer_deeplab": dict(folders=[f"{REP}/{{model}}/pred", f"{REP}/{{model}}/pred_crf"]),
    "voc_submission": dict(folders=[SUBMISSION_FOLDER], tarball=SUBMISSION_TARBALL),
}


for sharded_rule, artifacts in GATHERED.items():
    if rule_shards(sharded_rule) == 1:
        continue

    rule:
        name:
            f"gather_{sharded_rule}"
        input:
            **gather_inputs(sharded_rule, artifacts),
        output:
            **gather_outputs(sharded_rule, artifacts),
        log:
            RunLayout(SHARDED_JOBS[sharded_rule][0]).log(f"gather_{SHARDED_JOBS[sharded_rule][1]}"),
        benchmark:
            RunLayout(SHARDED_JOBS[sharded_rule][0]).benchmark(f"gather_{SHARDED_JOBS[sharded_rule][1]}")
        wildcard_constraints:
            model=DEEPLAB_MODELS,
        localrule: True
        conda:
            ENV
        threads: 1
        script:
            "../scripts/gather_shards.py"
