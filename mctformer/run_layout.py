"""Where a run's artifacts live under ``results/<run_name>/``: the one place the rules take the paths that more
than one rule file (or the report's inputs) name, and the replicate and refinement bookkeeping around them.

A :class:`RunLayout` is rooted at a run folder or at a pattern of one: ``results/<run_name>{replicate}`` stands
for every replicate (``{replicate}`` is empty for the config's seed, ``/replicates/seed_<s>`` for the others), so
the same paths serve a rule's outputs and, filled in by :func:`at_replicate`, an input function's files. Plain
Python on config values: the workflow (workflow/rules/common.smk) and the tests call it alike.
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


def replicate_seed(suffix: str, config_seed: int) -> int:
    """The training seed a {replicate} wildcard stands for (the config's for replicate 0, whose suffix is empty)."""
    return int(suffix.rsplit("_", 1)[1]) if suffix else config_seed


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


def flat_paths(files: Mapping[str, Any]) -> list[str]:
    """Every path in :func:`comparison_files`'s answer, once, in order."""
    paths: list[str] = []
    for value in files.values():
        if isinstance(value, str):
            paths.append(value)
        elif isinstance(value, Mapping):
            paths += flat_paths(value)
        elif isinstance(value, list):
            paths += value
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
