# Config loading, validation and the artifact layout shared by every rule file.
import functools
import os
import shlex
from pathlib import Path

from snakemake.utils import min_version, validate

from mctformer.models.registry import MAP_VARIANTS
from mctformer.models.weights import pretrained_path, pretrained_sections
from mctformer.run_layout import (
    DEEPLAB_OF_SOURCE,
    PREDICTION_FOLDERS,
    RunLayout,
    at_replicate,
    chain_model,
    chain_suffix,
    comparison_files,
    side_by_side_files,
    deeplab_models as deeplab_models_of,
    flat_paths,
    replicate_pattern,
    replicate_seed as seed_of_replicate,
    replicate_suffix as suffix_of_seed,
    SHARD_WILDCARD,
    shard_names,
    shard_part,
    timed_jobs,
)
from mctformer.config import (
    ConfigError,
    all_splits,
    builds_data_root,
    check_config,
    compose_config,
    data_root,
    deeplab_sources,
    layout_name,
    read_yaml,
    rule_resources,
    rule_settings,
    side_by_side_config,
    side_by_side_models,
)

min_version("9.0")

PROJECT_DIR = os.path.abspath(os.path.join(workflow.current_basedir.get_path_or_uri(secret_free=True), "..", ".."))


def composed_config():
    """The run's config (mctformer.config.compose_config): the files the `configfile:` directive loaded
    (config.yaml), the base chain of the overlay, the overlay (every --configfile and --config value), then the
    reference switches it leaves unstated, from its compat modes. The same as `python -m mctformer config show`."""
    given = {os.path.abspath(path) for path in workflow.overwrite_configfiles}
    defaults = [read_yaml(path) for path in workflow.configfiles if os.path.abspath(path) not in given]
    composed, _ = compose_config(defaults, workflow.config_settings.overwrite_config, Path(PROJECT_DIR))
    return composed


try:
    resolved = composed_config()
    config.clear()
    config.update(resolved)  # in place: `config` is Snakemake's own global
    validate(config, schema="../schemas/config.schema.yaml")
    check_config(config)
except ConfigError as error:
    raise WorkflowError(f"invalid config: {error}")
# The side-by-side models (side_by_side.models: name -> overlay). Each one's config is made and checked when a job of
# its chain is planned (model_config), so a run that asks for no side-by-side job never reads the overlays.
MODEL_OVERLAYS = side_by_side_models(config)

RUN = f"results/{config['run_name']}"
# Replicates (config `replicates`: N): the seed-dependent chain, train_classifier onwards, runs once per seed
# seed, seed + 1, ..., seed + N - 1. REP is its artifacts' prefix: RUN followed by the {replicate} wildcard,
# empty for the config's seed (replicate 0: the paths of a single run, results/<run_name>/...) and
# /replicates/seed_<s> for the others, so Snakemake schedules replicates as independent jobs and reruns only
# what changed. The prepared data and the class labels do not depend on the seed: every replicate reads RUN's.
REP = f"{RUN}{{replicate}}"
REPLICATE_SEEDS = [config["seed"] + offset for offset in range(config["replicates"])]
# The artifact layout (mctformer/run_layout.py): RUN_FILES for the run folder itself (replicate 0, and what every
# replicate shares), REP_FILES the {replicate} pattern of each replicate's own files.
RUN_FILES, REP_FILES = RunLayout(RUN), RunLayout(REP)

# the `wildcard_constraints:` directive, as a call (this file stays plain Python: tests/test_envs.py parses it).
# A side-by-side model's chain is the same rules under {RUN}/side_by_side/<model>, its replicates below it.
workflow.global_wildcard_constraints(replicate=replicate_pattern(list(MODEL_OVERLAYS)))


def replicate_suffix(seed):
    """The {replicate} wildcard of the replicate with this seed (run_layout.replicate_suffix)."""
    return suffix_of_seed(RUN, seed, config["seed"])


def replicate_seed(wildcards):
    """The training seed of a job's replicate (the ablation copies' too); the config's where a rule has no {replicate}."""
    return seed_of_replicate(wildcards.get("replicate", ""), config["seed"])


@functools.cache
def model_config(name):
    """The config of side-by-side model ``name`` (mctformer.config.side_by_side_config), checked as a run's config would
    be, before any job of its chain runs."""
    overlay = MODEL_OVERLAYS[name]
    try:
        model = side_by_side_config(config, name, Path(PROJECT_DIR))
        validate(model, schema=os.path.join(PROJECT_DIR, "workflow", "schemas", "config.schema.yaml"))
        check_config(model)
    except (ConfigError, WorkflowError) as error:
        raise WorkflowError(f"invalid config of side_by_side.models.{name} ({overlay}): {error}")
    if model["maps"]["variants"] != config["maps"]["variants"]:
        # extract_maps' outputs are the run's variants, and PSA / IRN read the run's seed variants from them
        raise WorkflowError(
            f"side_by_side.models.{name}: maps.variants {model['maps']['variants']} must be the run's "
            f"{config['maps']['variants']} (the models' chains make and refine the same maps)"
        )
    return model


def chain_config(wildcards):
    """The config of a job's chain: the run's, or a side-by-side model's (only train_classifier and extract_maps read
    the sections that differ)."""
    model = chain_model(wildcards.get("replicate", ""))
    return config if model is None else model_config(model)


def replicate_targets():
    """The aggregate's own figure, with replicates > 1: a target of its own, so that raising `replicates` on a
    finished run reruns the report even where no rerun trigger would (its other outputs already exist)."""
    return [RUN_FILES.figure("replicates")] if len(REPLICATE_SEEDS) > 1 else []


def other_replicate_summaries():
    """summary.json of every replicate but the config seed's, in seed order (the aggregating report reads them)."""
    return [RunLayout(f"{RUN}{replicate_suffix(seed)}").summary() for seed in REPLICATE_SEEDS[1:]]


DATA_ROOT = data_root(config, RUN)
LAYOUT = layout_name(config)
CLASSES = list(config["data"]["classes"])
SPLITS = config["data"]["splits"]
VARIANTS = list(config["maps"]["variants"])
# conda envs (under --use-conda): the CRF stages need pydensecrf on top of torch.
# They list third-party packages only; the core package comes from this checkout:
ENV = "../../envs/torch.yaml"
ENV_CRF = "../../envs/crf.yaml"


# Every job's command (a `script:` job's `python <script>` too) runs through
# Snakemake's shell(), which starts it with shell.prefix: here an export that
# puts the checkout first on PYTHONPATH, so the job and its children (torchrun's
# ranks run `python -m mctformer...`) import this checkout's mctformer from the
# venv (`make run`) and from a rule's conda env alike. In the command, not in
# os.environ: under --use-conda Snakemake deletes PYTHONPATH from a job's
# environment (snakemake/shell.py, conda_block_conflicting_envvars). Under SLURM
# each job is a new snakemake process on the node that reads this file again.
def job_shell_prefix(project_dir, executable):
    """Snakemake's default prefix for bash (set -euo pipefail) plus the PYTHONPATH export."""
    strict = "set -euo pipefail; " if os.path.basename(executable or "") in ("bash", "bash.exe") else ""
    prefix = f'{strict}export PYTHONPATH={shlex.quote(project_dir)}"${{PYTHONPATH:+:$PYTHONPATH}}"; '
    return prefix.replace("{", "{{").replace("}", "}}")  # shell.prefix() formats it like a shell: command


shell.prefix(job_shell_prefix(PROJECT_DIR, shell.get_executable()))


def rule_threads(rule):
    """Threads of a rule from config resources (snakemake caps them at --cores)."""
    return rule_settings(config, rule)["threads"]


def rule_resources_of(rule):
    return rule_resources(config, rule)


# Shards (mctformer/shards.py, docs/scaling.md): a per-image rule with resources.rules.<rule>.shards = N > 1 runs as N
# independent jobs, one per {shard} value "k-of-N", each writing its part of the rule's artifacts under
# <root>/shards/<rule>/{shard}/ (temp: removed once gathered); the rule gather_<rule> (workflow/rules/shards.smk)
# joins the parts into exactly the artifacts the unsharded rule writes, which the rules downstream read by path.
# With N = 1, the default, the rule writes its artifacts itself under its usual log and benchmark files; the jobs of a run
# without shards are those of before. Each rule's root (the run folder its artifacts lie under) and job name (its log's
# and benchmark's):
SHARDED_JOBS = {
    "extract_maps": (REP, "extract_maps"),
    "psa_labels": (REP, "psa_labels"),
    "random_walk": (REP, "random_walk"),
    "ir_labels": (REP, "ir_labels"),
    "irn_walk": (REP, "irn_walk"),
    "infer_deeplab": (REP, "infer_{model}"),
    "voc_submission": (RUN, "voc_submission"),
}
workflow.global_wildcard_constraints(shard=SHARD_WILDCARD)


def rule_shards(rule):
    """How many jobs a per-image rule's images are split into (resources.rules.<rule>.shards)."""
    return rule_settings(config, rule)["shards"]


def sharded_path(rule, path):
    """``path``, an artifact of ``rule``, or with shards its {shard}'s part of it (run_layout.shard_part)."""
    return path if rule_shards(rule) == 1 else shard_part(SHARDED_JOBS[rule][0], rule, path)


def sharded_directories(rule, paths):
    """directory() output(s) of a per-image rule: its artifact folder(s), or with shards its {shard}'s part(s), temp."""
    if rule_shards(rule) == 1:
        return directory(paths)
    parts = [sharded_path(rule, path) for path in paths] if isinstance(paths, list) else sharded_path(rule, paths)
    return temp(directory(parts))


def label_counts_part(rule, path):
    """Where a shard of a confident-label rule writes its pixel counts, its part of label_stats.json ``path``."""
    return sharded_path(rule, path).removesuffix(".json") + ".counts.json"


def sharded_file(rule, path):
    """A confident-label rule's label_stats.json, or with shards its {shard}'s pixel counts, temp."""
    return path if rule_shards(rule) == 1 else temp(label_counts_part(rule, path))


def sharded_job(rule):
    """The name of a per-image rule's log and benchmark file (the rule's job name; with shards, that and the {shard})."""
    job = SHARDED_JOBS[rule][1]
    return job if rule_shards(rule) == 1 else f"{job}_{{shard}}"


def sharded_log(rule):
    return RunLayout(SHARDED_JOBS[rule][0]).log(sharded_job(rule))


def sharded_benchmark(rule):
    return RunLayout(SHARDED_JOBS[rule][0]).benchmark(sharded_job(rule))


# The gather rules' files (workflow/rules/shards.smk): ``artifacts`` are a per-image rule's GATHERED entry there.
def shard_parts(rule, pattern):
    """``pattern`` (a path with {shard}) for every shard of ``rule``, other wildcards kept."""
    return expand(pattern, shard=shard_names(rule_shards(rule)), allow_missing=True)


def gather_inputs(rule, artifacts):
    """The parts gather_<rule> joins: folder_<i> the i-th folder's, label_counts the shards' counts, benchmarks theirs."""
    inputs = {
        f"folder_{index}": shard_parts(rule, sharded_path(rule, path))
        for index, path in enumerate(artifacts["folders"])
    }
    if "label_stats" in artifacts:
        inputs["label_counts"] = shard_parts(rule, label_counts_part(rule, artifacts["label_stats"]))
    inputs["benchmarks"] = shard_parts(rule, sharded_benchmark(rule))
    return inputs


def gather_outputs(rule, artifacts):
    """The artifacts gather_<rule> writes (named as gather_inputs' parts) and the rule's benchmark file."""
    outputs = {f"folder_{index}": directory(path) for index, path in enumerate(artifacts["folders"])}
    outputs.update({key: artifacts[key] for key in ("label_stats", "tarball") if key in artifacts})
    root, job = SHARDED_JOBS[rule]
    outputs["benchmark"] = RunLayout(root).benchmark(job)
    return outputs


def device_keys(rule):
    """The keys every stage that runs a network takes: the config's device and deterministic, and the GPUs the
    rule's job asks for (its resources' gpu), so that torch_setup can refuse a GPU job that sees no GPU."""
    return dict(
        device=config["device"], deterministic=config["deterministic"], gpus=rule_settings(config, rule)["gpus"]
    )


def dataset_inputs():
    """Dataset inputs of a job: the root (built by a rule or given) and, for a given root, its split lists."""
    inputs = {"data": DATA_ROOT}
    if not builds_data_root(config):
        for split in all_splits(config):
            inputs[f"list_{split}"] = os.path.join(DATA_ROOT, "ImageSets", "Segmentation", f"{split}.txt")
    return inputs


def folder_inputs():
    """The files data.folder names (inputs of prepare_folder): images, labels, masks and, when given, the split lists."""
    folder = config["data"]["folder"]
    inputs = dict(images=folder["images"], labels=folder["labels"], masks=folder["masks"])
    if folder["split_lists"]:
        inputs["split_lists"] = [os.path.join(folder["split_lists"], f"{split}.txt") for split in all_splits(config)]
    return inputs


def pretrained_files():
    """The weights files the sections' `pretrained` keys name as paths (the report hashes them into the run's
    provenance). A timm name or Hugging Face id is resolved in the local Hugging Face cache by the jobs that read it
    (they have timm and huggingface_hub; this process may not), so it is no declared input."""
    return [str(path) for section in pretrained_sections(config) if (path := pretrained_path(config, section))]


def pretrained_input(section):
    """A trainer's input of the weights file it starts from, when <section>.pretrained is a path; {} otherwise."""
    path = pretrained_path(config, section) if section in pretrained_sections(config) else None
    return {"pretrained": str(path)} if path else {}


def data_root_of(wildcards, input):
    return input.data


def archive_inputs():
    """The release files/folders data.archives names (inputs of prepare_voc12 / prepare_coco14)."""
    return {key: path for key, path in (config["data"].get("archives") or {}).items() if path}


def extraction_splits():
    """Maps are made for everything later steps train on, plus every split the seeds are evaluated on."""
    return list(dict.fromkeys([SPLITS["train"], *SPLITS["seed_eval"]]))


def seed_targets():
    return [REP_FILES.seed_plot(split) for split in SPLITS["seed_eval"]]


def best_threshold_file():
    """The sweep result that sets the walk's background score, unless the config pins it."""
    if config["psa"]["background"] is not None:
        return []
    return [REP_FILES.seed_best(config["psa"]["threshold_split"], config["psa"]["seed_variant"])]


def random_walk_splits():
    return list(dict.fromkeys([SPLITS["train"], *config["psa"]["eval_splits"]]))


REFINEMENTS = list(config["refine"]["methods"])
# The pseudo masks of each refinement; the DeepLab model trained on them is run_layout.DEEPLAB_OF_SOURCE's.
PSEUDO_MASKS = {method: REP_FILES.pseudo_masks(method) for method in DEEPLAB_OF_SOURCE}
DEEPLAB_MODELS = "|".join([*DEEPLAB_OF_SOURCE.values(), "deeplab_gt"])


def deeplab_training_inputs(wildcards):
    """DeepLab trains on one refinement's pseudo masks, or for "deeplab_gt" on the dataset's own masks."""
    inputs = {**dataset_inputs(), **pretrained_input("deeplab")}
    sources = {model: source for source, model in DEEPLAB_OF_SOURCE.items()}
    if wildcards.model in sources:
        inputs["masks"] = at_replicate(PSEUDO_MASKS[sources[wildcards.model]], wildcards.replicate)
    return inputs


def deeplab_models():
    """The DeepLab models of the run: one per deeplab.pseudo_masks source, then the ground-truth one."""
    return deeplab_models_of(deeplab_sources(config), config["deeplab"]["train_on_gt"])


def irn_walk_splits():
    return list(dict.fromkeys([SPLITS["train"], *config["irn"]["eval_splits"]]))


# The keys of config["irn"] the boundary network's training reads (its fingerprint: editing the walk retrains nothing).
IRN_TRAINING_KEYS = """backbone pretrained freeze_backbone edge_channels train_radius pair_sources crop_size scale_range
flip epochs batch_size optimizer lr momentum weight_decay head_lr_mult amp amp_dtype workers in_memory""".split()


def benchmark_files():
    """Every job's benchmark file that the report's stage-time table reads (run_layout.timed_jobs): a replicate's
    own jobs under REP, the shared ones (data, labels) under RUN."""
    prepare_job = None
    if config["data"]["source"] == "synthetic":
        prepare_job = "prepare_data"
    elif config["data"]["source"] == "folder":
        prepare_job = "prepare_folder"
    elif config["data"].get("archives"):
        prepare_job = "prepare_voc12" if LAYOUT == "voc" else "prepare_coco14"
    shared, jobs = timed_jobs(config, REFINEMENTS, deeplab_models(), prepare_job)
    return [RUN_FILES.benchmark(job) for job in shared] + [REP_FILES.benchmark(job) for job in jobs]


def submission_targets():
    """The VOC test-server tarball, when the config names a test split."""
    return [f"{RUN_FILES.deeplab('deeplab')}/submission.tar.gz"] if config["deeplab"]["test_split"] else []


def section_keys(section, *keys):
    """The named keys of config[section], in the order named: the one way a rule hands its stage config keys.

    A rule names exactly what its stage reads, so editing any other key reruns nothing (its params, Snakemake's rerun
    trigger, stay equal); a stage that reads a whole section (a trainer's settings) gets config[section] itself.
    """
    return {key: config[section][key] for key in keys}


def in_section_order(section, keys):
    """``keys`` in the order config[section] has them (an overlay's keys first). DeepLab's and extract_maps' params
    have always listed their keys so; naming them in another order would change the params and rerun those jobs."""
    return [key for key in config[section] if key in keys]


# The keys of config["seeds"] a threshold sweep reads (seeds.labels and label_threshold choose jobs and labels instead).
SEED_SWEEP_KEYS = ("thresholds", "miou_convention", "selection")
# seeds.labels: predicted also makes seeds of the classifier's own labels (maps_predicted/, seeds_predicted/).
PREDICTED_SEEDS = "predicted" in config["seeds"]["labels"]
# The keys of config["maps"] one extraction reads (all but the variants, which are the rule's outputs).
MAPS_EXTRACTION_KEYS = (
    """last_k scales flip feature_temperature batch_size overlays resize remainder position_embedding amp
storage_dtype workers""".split()
)


def maps_extraction_keys(chain):
    """MAPS_EXTRACTION_KEYS of a chain's config (the run's or a side-by-side model's), in its maps section's order."""
    return {key: chain["maps"][key] for key in chain["maps"] if key in MAPS_EXTRACTION_KEYS}


# The keys of config["deeplab"] its training reads (its fingerprint) and those its inference reads, so that editing
# the inference scales retrains nothing; the splits, train_on_gt and pseudo_masks choose the jobs' files instead.
DEEPLAB_TRAINING_KEYS = (
    """backbone pretrained head aspp_dilations head_channels dilation dropout classifier_kernel head_init
crop_size pad_label scale_range flip epochs batch_size lr momentum weight_decay head_lr_mult amp amp_dtype sync_batchnorm
workers in_memory""".split()
)
DEEPLAB_INFERENCE_KEYS = (
    "scales",
    "flip_inference",
    "fuse",
    "inference_resize",
    "crf",
    "inference_amp",
    "inference_workers",
)


# The report's files (report.smk).
def report_outputs(run):
    """The report's files under ``run`` (REP: a replicate's; RUN: the aggregating report's)."""
    files = RunLayout(run)
    return {
        "summary": files.summary(),
        "report": f"{run}/report.md",
        "seed_ablation": report(files.figure("seed_ablation"), category="Seeds", caption="../report/seed_ablation.rst"),
        "per_class": report(
            files.figure("per_class_iou"), category="Masks and segmentation", caption="../report/per_class.rst"
        ),
        "examples_masks": report(
            files.figure("examples_masks"), category="Masks and segmentation", caption="../report/examples.rst"
        ),
        "repairs": report(files.figure("repairs"), category="Masks and segmentation", caption="../report/repairs.rst"),
        "examples_deeplab": report(
            files.figure("examples_deeplab"), category="Masks and segmentation", caption="../report/examples.rst"
        ),
        "training_curves": report(
            files.figure("training_curves"), category="Training", caption="../report/training_curves.rst"
        ),
    }


# The paper's ablations (workflow/rules/ablations.smk). Each replicate runs them on its own classifier and chain, under
# its own ablations/ (ABLATIONS, a pattern with {replicate}: results/<run>/ablations/ for replicate 0); with
# replicates > 1 the rule ablation_replicates joins the replicates' tables under results/<run>/ablations/replicates/.
ABLATIONS = REP_FILES.ablations
ABLATION_FILES = RunLayout(ABLATIONS)  # its logs and benchmarks beside its artifacts
ABLATION_NAMES = ("layers", "heads", "maps", "segmentation")
VERSION = config["classifier"]["version"]
ALL_MAP_VARIANTS = list(MAP_VARIANTS[VERSION])
# The variants maps.variants leaves out (V2's patchcam by default): one extra extraction pass makes them.
EXTRA_MAP_VARIANTS = [variant for variant in ALL_MAP_VARIANTS if variant not in VARIANTS]
SEED_SPLITS = SPLITS["seed_eval"]
POOLINGS = list(config["ablations"]["heads"]["poolings"])
SEGMENTATION_VARIANTS = list(config["ablations"]["segmentation"]["variants"][VERSION])
SEGMENTATION = f"{ABLATIONS}/segmentation/{{variant}}"


def ablation_files(name):
    """What the target ablation_<name> (and `ablations`) reads: replicate 0's table, figure and section, or with
    replicates > 1 their aggregate over the replicates."""
    folder = f"{RUN}/ablations/replicates" if len(REPLICATE_SEEDS) > 1 else f"{RUN}/ablations"
    return {
        kind: f"{folder}/{name}.{extension}"
        for kind, extension in (("table", "csv"), ("plot", "png"), ("section", "md"))
    }


def ablation_map_dir(variant):
    """The replicate's maps of a variant (a {replicate} pattern): extract_maps' when maps.variants has it, else the
    ablation's extraction."""
    return REP_FILES.maps(variant) if variant in VARIANTS else f"{ABLATIONS}/maps/maps/{variant}"


def ablation_seed_best(split, variant):
    """The sweep answer of a variant on a split (a {replicate} pattern), from evaluate_seeds or its ablation copy."""
    if variant in VARIANTS:
        return REP_FILES.seed_best(split, variant)
    return f"{ABLATIONS}/maps/seeds/{split}/{variant}/best.json"


def heads_checkpoint(wildcards):
    """The config's own pooling is the replicate's classifier (same settings and seed: a retraining would repeat it)."""
    if wildcards.pooling == config["classifier"]["token_pooling"]:
        return at_replicate(rules.train_classifier.output.checkpoint, wildcards.replicate)
    return at_replicate(f"{ABLATIONS}/heads/{wildcards.pooling}/classifier/checkpoint.pt", wildcards.replicate)


def with_token_pooling(config_keys, pooling):
    """train_classifier's keys with classifier.token_pooling set to ``pooling``, nothing else changed."""
    return {**config_keys, "settings": {**config_keys["settings"], "token_pooling": pooling}}


def segmentation_chain(variant):
    """Where a variant's PSA + DeepLab chain lives (a {replicate} pattern): the replicate's own for psa.seed_variant,
    else under its ablations/."""
    return REP if variant == config["psa"]["seed_variant"] else f"{ABLATIONS}/segmentation/{variant}"


def segmentation_best_threshold(wildcards):
    """The walk's background score of a variant: its best seed threshold, unless psa.background pins one."""
    if config["psa"]["background"] is not None:
        return []
    return [at_replicate(ablation_seed_best(config["psa"]["threshold_split"], wildcards.variant), wildcards.replicate)]


# `snakemake side_by_side` (side_by_side.smk)
def side_by_side_table_files(wildcards=None):
    """The table's inputs by model and replicate (run_layout.side_by_side_files), each model's config checked first:
    made only when the target is asked for, so a config the side-by-side does not fit still runs everything else."""
    for name in MODEL_OVERLAYS:
        model_config(name)
    try:
        return side_by_side_files(config, RUN, list(MODEL_OVERLAYS), REPLICATE_SEEDS)
    except ValueError as error:
        raise WorkflowError(f"side_by_side: {error}")
