"""Where a run's artifacts live under ``results/<run_name>/``: the one place the rules take the paths that more
than one rule file (or the report's inputs) name, and the replicate and refinement bookkeeping around them.

A :class:`RunLayout` is rooted at a run folder or at a pattern of one: ``results/<run_name>{replicate}`` stands
for every replicate (``{replicate}`` is empty for the config's seed, ``/replicates/seed_<s>`` for the others), so
the same paths serve a rule's outputs and, filled in by :func:`at_replicate`, an input function's files. Plain
Python on config values: the workflow (workflow/rules/common.smk) and the tests call it alike.

The side-by-side target (workflow/rules/side_by_side.smk) runs the same chain for another model beside the run's
own: its files lie under ``results/<run_name>/side_by_side/<model>``, replicates included, so ``{replicate}`` is
``[/side_by_side/<model>][/replicates/seed_<s>]`` (:func:`chain_suffix`); the run's own chain has no model part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The DeepLab model each refinement's pseudo masks train (deeplab_gt: the one trained on the ground truth).
DEEPLAB_OF_SOURCE = {"psa": "deeplab", "irn": "deeplab_irn"}
# The jobs whose times make one refinement's cost in the comparison table.
REFINEMENT_JOBS = {
    "psa": ("psa_labels", "train_affinity", "random_walk"),
    "irn": ("ir_labels", "train_irn", "irn_walk"),
}
PREDICTION_FOLDERS = ("pred", "pred_crf")  # DeepLab's argmax and its CRF-refined predictions
# The per-image rules a `shards` setting (resources.rules.<rule>.shards) may split (mctformer/shards.py), and their
# {shard} wildcard: "<k>-of-<N>", k from 1, as Snakemake's scattergather names its items.
SHARDED_RULES = ("extract_maps", "psa_labels", "random_walk", "ir_labels", "irn_walk", "infer_deeplab", "voc_submission")
SHARD_NUMBER = "[1-9][0-9]*"
SHARD_WILDCARD = f"{SHARD_NUMBER}-of-{SHARD_NUMBER}"


@dataclass(frozen=True)
class RunLayout:
    """The artifact paths of one run folder (or of a ``{replicate}`` pattern of one)."""

    run: str

    def log(self, job: str) -> str:
        return f"{self.run}/logs/{job}.log"

    def benchmark(self, job: str) -> str:
        return f"{self.run}/benchmarks/{job}.tsv"

    def classifier_checkpoint(self) -> str:
        return f"{self.run}/classifier/checkpoint.pt"

    def affinity_checkpoint(self) -> str:
        """PSA's AffinityNet."""
        return f"{self.run}/psa/affinity.pt"

    def deeplab_checkpoint(self, model: str) -> str:
        return f"{self.run}/{model}/checkpoint.pt"

    def predicted_labels(self) -> str:
        """The classifier's image-level labels of the seed_eval splits at seeds.label_threshold (cls_labels.npy's format)."""
        return f"{self.run}/classifier/predicted/cls_labels.npy"

    def label_scores(self) -> str:
        """Each image's classifier scores beside its predicted and its true labels (CSV)."""
        return f"{self.run}/classifier/predicted/scores.csv"

    def label_evaluation(self) -> str:
        """The predicted labels' per-class precision / recall against the ground truth, per seed_eval split."""
        return f"{self.run}/classifier/predicted/precision_recall.csv"

    def maps(self, variant: str) -> str:
        """The folder of one map variant's per-image .npz files."""
        return f"{self.run}/maps/{variant}"

    def predicted_maps(self, variant: str) -> str:
        """:meth:`maps` of the classifier's own labels (seeds.labels: predicted)."""
        return f"{self.run}/maps_predicted/{variant}"

    def seeds(self, predicted: bool) -> str:
        """The seed evaluations' folder: seeds/ (ground-truth labels) or seeds_predicted/ (the classifier's)."""
        return f"{self.run}/{'seeds_predicted' if predicted else 'seeds'}"

    def seed_best(self, split: str, variant: str, predicted: bool = False) -> str:
        return f"{self.seeds(predicted)}/{split}/{variant}/best.json"

    def seed_sweep(self, split: str, variant: str, predicted: bool = False) -> str:
        return f"{self.seeds(predicted)}/{split}/{variant}/sweep.csv"

    def seed_plot(self, split: str, predicted: bool = False) -> str:
        return f"{self.seeds(predicted)}/{split}/sweep.png"

    def masks(self, method: str) -> str:
        """The folder that holds a refinement's pseudo masks (``pseudo/``) and their evaluation files."""
        return {"psa": f"{self.run}/masks", "irn": f"{self.run}/masks/irn"}[method]

    def pseudo_masks(self, method: str) -> str:
        return f"{self.masks(method)}/pseudo"

    def mask_evaluation(self, method: str, split: str, extension: str = "json") -> str:
        """eval_<split>.json (the summary), .csv (per class) or .png (the figure) of a refinement's masks."""
        return f"{self.masks(method)}/eval_{split}.{extension}"

    def crf_only_table(self, split: str) -> str:
        """PSA's ablation on ``split``: seeds, seeds + CRF, the colour and the learned walk."""
        return f"{self.run}/masks/ablation_{split}.csv"

    def deeplab(self, model: str) -> str:
        return f"{self.run}/{model}"

    def deeplab_evaluation(self, model: str, folder: str, extension: str = "json") -> str:
        return f"{self.run}/{model}/eval_{folder}.{extension}"

    def summary(self) -> str:
        return f"{self.run}/summary.json"

    def figure(self, name: str) -> str:
        return f"{self.run}/figures/{name}.png"

    @property
    def ablations(self) -> str:
        return f"{self.run}/ablations"


def shard_names(count: int) -> list[str]:
    """The ``{shard}`` values of a stage split ``count`` ways, in order: 1-of-N ... N-of-N."""
    return [f"{index}-of-{count}" for index in range(1, count + 1)]


def shard_part(root: str, rule: str, path: str) -> str:
    """Where a shard of a per-image ``rule`` writes its part of the artifact ``path`` (under the run folder ``root``):
    ``<root>/shards/<rule>/{shard}/<path below root>`` ({shard}: a wildcard, "k-of-N")."""
    if not path.startswith(f"{root}/"):
        raise ValueError(f"{rule}'s artifact {path} is not under its run folder {root}")
    return f"{root}/shards/{rule}/{{shard}}/{path.removeprefix(f'{root}/')}"


def replicate_suffix(run: str, seed: int, config_seed: int) -> str:
    """The {replicate} wildcard of the replicate with ``seed``: empty for the config's own seed (the run's own
    paths), else ``/replicates/seed_<seed>``."""
    return "" if seed == config_seed else f"{run}/replicates/seed_{seed}".removeprefix(run)


SIDE_BY_SIDE = "side_by_side"  # the folder under the run that holds the other models' chains and their table


def chain_suffix(model: str | None, seed: int, config_seed: int) -> str:
    """The {replicate} wildcard of one chain: ``model``'s (None: the run's own model) replicate with ``seed``."""
    replicate = "" if seed == config_seed else f"/replicates/seed_{seed}"
    return f"/{SIDE_BY_SIDE}/{model}{replicate}" if model else replicate


def replicate_seed(suffix: str, config_seed: int) -> int:
    """The training seed a {replicate} wildcard stands for (the config's for replicate 0, whose suffix has no
    ``/replicates/seed_<s>`` part): the same for every model, so the side-by-side chains pair up seed by seed."""
    replicate = suffix.partition("/replicates/")[2]
    return int(replicate.removeprefix("seed_")) if replicate else config_seed


def chain_model(suffix: str) -> str | None:
    """The side-by-side model a {replicate} wildcard's chain belongs to, None for the run's own."""
    if not suffix.startswith(f"/{SIDE_BY_SIDE}/"):
        return None
    return suffix.removeprefix(f"/{SIDE_BY_SIDE}/").partition("/")[0]


def replicate_pattern(models: Sequence[str]) -> str:
    """The regular expression of the {replicate} wildcard (Snakemake's wildcard constraint) for these side-by-side
    models: an optional model part, then an optional replicate part."""
    model_part = f"(/{SIDE_BY_SIDE}/({'|'.join(models)}))?" if models else ""
    return f"{model_part}(/replicates/seed_[0-9]+)?"


def at_replicate(paths: Any, replicate: str) -> Any:
    """``paths`` (a path pattern, or dicts / lists of them) with {replicate} filled in."""
    if isinstance(paths, str):
        return paths.replace("{replicate}", replicate)
    if isinstance(paths, Mapping):
        return {key: at_replicate(value, replicate) for key, value in paths.items()}
    if isinstance(paths, (list, tuple)):
        return [at_replicate(value, replicate) for value in paths]
    return paths


def deeplab_models(sources: Sequence[str], train_on_gt: bool) -> list[str]:
    """The DeepLab models of a run: one per deeplab.pseudo_masks source, then the ground-truth one."""
    models = [DEEPLAB_OF_SOURCE[source] for source in sources]
    return models + ["deeplab_gt"] if train_on_gt else models


def comparison_files(
    config: Mapping[str, Any], layout: RunLayout, methods: Sequence[str], deeplab_methods: Sequence[str],
) -> dict[str, Any]:
    """The inputs of the refinement comparison, by role and method: each method's seeds (its seed variant's sweep
    on its mask split, where that split is swept), PSA's CRF-only ablation, each method's masks and the DeepLab
    trained on them, and the stage times."""
    split = {method: config[method]["eval_splits"][0] for method in ("psa", "irn")}
    variant = {method: config[method]["seed_variant"] for method in ("psa", "irn")}
    return {
        "seed_bests": {
            method: layout.seed_best(split[method], variant[method])
            for method in methods
            if split[method] in config["data"]["splits"]["seed_eval"]
        },
        "crf_only_table": layout.crf_only_table(split["psa"]) if "psa" in methods else None,
        "mask_summaries": {method: layout.mask_evaluation(method, split[method]) for method in methods},
        "deeplab_summaries": {
            method: {folder: layout.deeplab_evaluation(DEEPLAB_OF_SOURCE[method], folder) for folder in PREDICTION_FOLDERS}
            for method in deeplab_methods
        },
        "refinement_benchmarks": {method: [layout.benchmark(job) for job in REFINEMENT_JOBS[method]] for method in methods},
        "deeplab_benchmarks": {
            method: [layout.benchmark(f"{stage}_{DEEPLAB_OF_SOURCE[method]}") for stage in ("train", "infer")]
            for method in deeplab_methods
        },
    }


def flat_paths(files: Mapping[str, Any] | Sequence[Any]) -> list[str]:
    """Every path in :func:`comparison_files`'s or :func:`side_by_side_files`' answer (mappings and lists of paths,
    nested), once, in order; None (a file a config makes none of) is skipped."""
    paths: list[str] = []
    for value in files.values() if isinstance(files, Mapping) else files:
        if isinstance(value, str):
            paths.append(value)
        elif isinstance(value, (Mapping, list, tuple)):
            paths += flat_paths(value)
    return list(dict.fromkeys(paths))


def timed_jobs(config: Mapping[str, Any], refinements: Sequence[str], models: Sequence[str], prepare_job: str | None) -> tuple[list[str], list[str]]:
    """The jobs whose benchmark files the report's stage-time table reads (the report's own excepted), as (jobs
    shared by every replicate: the data and its labels; each replicate's own jobs)."""
    shared = ["class_labels", *([prepare_job] if prepare_job else [])]
    jobs = ["train_classifier", "extract_maps"]
    jobs += [job for method in refinements for job in REFINEMENT_JOBS[method]]
    jobs += [f"evaluate_seeds_{split}" for split in config["data"]["splits"]["seed_eval"]]
    if "predicted" in config["seeds"]["labels"]:
        jobs += ["predict_labels", "extract_maps_predicted"]
        jobs += [f"evaluate_seeds_predicted_{split}" for split in config["data"]["splits"]["seed_eval"]]
    jobs += [f"{stage}_{split}" for split in config["psa"]["eval_splits"] for stage in ("evaluate_masks", "psa_ablation")]
    if "irn" in refinements:
        jobs += [f"evaluate_irn_masks_{split}" for split in config["irn"]["eval_splits"]]
    jobs += [f"{stage}_{model}" for model in models for stage in ("train", "infer")]
    jobs += [f"evaluate_{model}_{folder}" for model in models for folder in PREDICTION_FOLDERS]
    return shared, jobs


# The jobs whose times make one chain's cost in the side-by-side table, by part of the chain.
SIDE_BY_SIDE_JOBS = {
    "classifier": ("train_classifier", "extract_maps"),
    "psa": REFINEMENT_JOBS["psa"],
    "irn": REFINEMENT_JOBS["irn"],
    "deeplab": (f"train_{DEEPLAB_OF_SOURCE['psa']}", f"infer_{DEEPLAB_OF_SOURCE['psa']}"),
}


def side_by_side_files(
    config: Mapping[str, Any], run: str, models: Sequence[str], seeds: Sequence[int],
) -> dict[str, list[dict[str, Any]]]:
    """The inputs of the side-by-side table: per model (``models``: the side-by-side ones; the run's own comes first,
    under its classifier.version), per replicate seed in order, its seeds' best.json on each seed split, its PSA and
    IRN masks' evaluations, its DeepLab's (trained on the PSA masks) with and without CRF, and its jobs' benchmarks."""
    seed_variant, mask_split = config["psa"]["seed_variant"], config["psa"]["eval_splits"][0]
    irn_variant, irn_split = config["irn"]["seed_variant"], config["irn"]["eval_splits"][0]
    if irn_variant != seed_variant:
        raise ValueError(f"irn.seed_variant {irn_variant!r} must be psa.seed_variant {seed_variant!r}: the side-by-side "
                         "table refines the same seeds both ways")
    own = config["classifier"]["version"]
    if own in models:
        raise ValueError(f"side_by_side.models: {own!r} names the run's own model (classifier.version); name the other one otherwise")
    chains = {own: None, **{model: model for model in models}}
    files: dict[str, list[dict[str, Any]]] = {}
    for label, model in chains.items():
        files[label] = []
        for seed in seeds:
            layout = RunLayout(f"{run}{chain_suffix(model, seed, config['seed'])}")
            files[label].append({
                "seeds": {split: layout.seed_best(split, seed_variant) for split in config["data"]["splits"]["seed_eval"]},
                "masks": {"psa": layout.mask_evaluation("psa", mask_split), "irn": layout.mask_evaluation("irn", irn_split)},
                "deeplab": {folder: layout.deeplab_evaluation(DEEPLAB_OF_SOURCE["psa"], folder) for folder in PREDICTION_FOLDERS},
                "benchmarks": {
                    part: [layout.benchmark(job) for job in jobs] for part, jobs in SIDE_BY_SIDE_JOBS.items()
                },
            })
    return files
