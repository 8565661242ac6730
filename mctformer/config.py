"""The configuration: composed from its files, resolved, and checked beyond its schema.

A run's config is config.yaml, the chain of ``base:`` files its overlay builds on, then the
overlay (compose_config), with the reference switches it leaves unstated filled from its
``compat:`` modes (mctformer.compat). The schema (workflow/schemas/config.schema.yaml) checks
types, ranges and unknown keys; check_config checks what one key implies for another and that
every path the config names exists, so a bad config fails before any job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from copy import deepcopy
from pathlib import Path
from typing import Any

import yaml

from .compat import apply_compat
from .models.registry import ARCHITECTURES, MAP_VARIANTS, backbone_output_stride, check_last_k
from .run_layout import SHARDED_RULES

# The pipeline's folder (Snakefile, config.yaml, workflow/): a config's `base:` is relative to it.
PROJECT_DIR = Path(__file__).resolve().parents[1]
SCHEMA = PROJECT_DIR / "workflow" / "schemas" / "config.schema.yaml"

SYNTHETIC_SPLITS = ("train_aug", "train", "val")
# The keys of data.folder that name files: set with another data.source, they would go unread.
FOLDER_PATH_KEYS = ("images", "labels", "masks", "split_lists")


class ConfigError(ValueError):
    """A configuration error; the message names the key and what was expected."""


# What data.archives takes per source (required, optional) and the split lists the prepare rule writes.
ARCHIVE_KEYS = {"voc": (("voc",), ("sbd", "test")), "coco": (("images", "annotations"), ())}
PREPARED_SPLITS = {"voc": ("train_aug", "train", "val"), "coco": ("train", "val")}


def read_yaml(path: str | Path) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def merge_config(target: dict, overlay: Mapping[str, Any]) -> dict:
    """``overlay`` merged into ``target`` (in place) as Snakemake merges config files: mappings key by key,
    anything else replaced."""
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            merge_config(target[key], value)
        else:
            target[key] = deepcopy(value) if isinstance(value, Mapping) else value
    return target


def base_chain(config: Mapping[str, Any], project_dir: Path = PROJECT_DIR) -> list[dict]:
    """The config files ``config``'s ``base:`` builds on, the root one first."""
    chain: list[dict] = []
    seen: list[Path] = []
    base = config.get("base")
    while base:
        path = (project_dir / base).resolve()
        if path in seen:
            raise ConfigError(f"base: {base} is its own base (through {' -> '.join(map(str, seen))})")
        if not path.is_file():
            raise ConfigError(f"base: config file {path} does not exist (a path relative to {project_dir})")
        seen.append(path)
        layer = read_yaml(path)
        chain.insert(0, layer)
        base = layer.get("base")
    return chain


def compose_config(
    defaults: Iterable[Mapping[str, Any]], overlay: Mapping[str, Any], project_dir: Path = PROJECT_DIR,
) -> tuple[dict, list[tuple[str, Any, str]]]:
    """The workflow's config before validation: ``defaults`` (config.yaml), the chain of ``overlay``'s ``base:``
    files, then ``overlay`` itself (every --configfile and --config value, merged), each merged over the one
    before; then the reference switches it does not state, from its ``compat:`` modes (mctformer.compat).

    Returns (config, what compat set: (key, value, mode) per switch)."""
    config: dict = {}
    for layer in [*defaults, *base_chain(overlay, project_dir), overlay]:
        merge_config(config, layer)
    try:
        set_by_compat = apply_compat(config)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if (config.get("data") or {}).get("source") == "folder":
        take_folder_classes(config)
    return config, set_by_compat


def take_folder_classes(config: dict) -> None:
    """data.source folder: data.classes becomes the class list of data.folder.labels (the file's columns, its
    ``classes``, or the names it uses); a data.classes that is set must be that list (for a file that lists its
    images' classes without declaring the list, a set data.classes declares it)."""
    from .data.errors import DatasetError
    from .data.label_table import read_label_table

    data = config["data"]
    labels = (data.get("folder") or {}).get("labels")
    if not labels:
        raise ConfigError("data.folder.labels: required when data.source is 'folder' (a .csv or .json of image-level labels)")
    try:
        table = read_label_table(labels, data.get("classes"))
    except DatasetError as error:
        raise ConfigError(f"data.folder.labels: {error}") from None
    if data.get("classes") is not None and list(data["classes"]) != list(table.classes):
        raise ConfigError(f"data.classes: {list(data['classes'])} is not the class list of data.folder.labels {list(table.classes)}; "
                          "set data.classes to null to take the file's")
    data["classes"] = list(table.classes)


def load_config(configfiles: Iterable[str | Path] = (), overrides: Mapping[str, Any] | None = None,
                default_file: str | Path | None = PROJECT_DIR / "config.yaml") -> tuple[dict, list[tuple[str, Any, str]]]:
    """What Snakemake sees for ``snakemake --configfile <configfiles...> --config <overrides>``: config.yaml
    (``default_file``), the overlays, composed and compat-resolved, then checked against the schema."""
    import jsonschema

    overlay: dict = {}
    for path in configfiles:
        merge_config(overlay, read_yaml(path))
    merge_config(overlay, overrides or {})
    config, set_by_compat = compose_config([read_yaml(default_file)] if default_file else [], overlay)
    try:
        jsonschema.validate(config, read_yaml(SCHEMA))
    except jsonschema.ValidationError as error:
        where = ".".join(map(str, error.absolute_path)) or "(top level)"
        raise ConfigError(f"{where}: {error.message}") from None
    return config, set_by_compat


# What a side-by-side model takes from its overlay; every other section is the run's, so both chains share the data,
# the post-processing and DeepLab (docs/mctformer-plus.md).
SIDE_BY_SIDE_SECTIONS = ("classifier", "maps")


def side_by_side_models(config: Mapping[str, Any]) -> dict[str, str]:
    """side_by_side.models without its null entries: {model name: its overlay file}, in the order written."""
    return {name: path for name, path in (config.get("side_by_side", {}).get("models") or {}).items() if path is not None}


def side_by_side_config(config: Mapping[str, Any], name: str, project_dir: Path = PROJECT_DIR) -> dict:
    """The config of the side-by-side model ``name``: ``config`` (the run's, resolved) with the ``classifier`` and
    ``maps`` sections of the model's overlay composed over it, the overlay's ``base:`` chain included. Not validated
    here: the workflow checks it as a run's config when a job of that model's chain is planned."""
    overlay_file = side_by_side_models(config)[name]
    path = (project_dir / overlay_file).resolve()
    if not path.is_file():
        raise ConfigError(f"side_by_side.models.{name}: config file {path} does not exist (a path relative to {project_dir})")
    composed, _ = compose_config([deepcopy(dict(config))], read_yaml(path), project_dir)
    model = deepcopy(dict(config))
    for section in SIDE_BY_SIDE_SECTIONS:
        model[section] = composed[section]
    return model


def builds_data_root(config: Mapping[str, Any]) -> bool:
    """Whether a rule makes the dataset root (synthetic data, a real dataset from data.archives, a folder dataset)."""
    return config["data"]["source"] in ("synthetic", "folder") or bool(config["data"].get("archives"))


def data_root(config: Mapping[str, Any], run_dir: str) -> str:
    """Where the VOC/COCO-layout tree is: built under the run (synthetic, or from data.archives), else data.root."""
    if builds_data_root(config):
        return f"{run_dir}/data"
    return str(config["data"]["root"])


def layout_name(config: Mapping[str, Any]) -> str:
    """The reader of the run's root (mctformer.data.layout.LAYOUTS): the synthetic tree is VOC's."""
    return {"coco": "coco", "folder": "folder"}.get(config["data"]["source"], "voc")


def all_splits(config: Mapping[str, Any]) -> list[str]:
    splits = config["data"]["splits"]
    irn_splits = (config.get("irn") or {}).get("eval_splits", [])
    return list(dict.fromkeys([splits["train"], splits["val"], *splits["seed_eval"], *config["psa"]["eval_splits"], *irn_splits]))


def deeplab_sources(config: Mapping[str, Any]) -> list[str]:
    """deeplab.pseudo_masks as a list: the refinements whose masks a DeepLab trains on, one model each."""
    sources = config["deeplab"]["pseudo_masks"]
    return [sources] if isinstance(sources, str) else list(sources)


def check_refinements(config: Mapping[str, Any]) -> None:
    """refine.methods, deeplab.pseudo_masks and the irn section: what one implies for another."""
    methods = config["refine"]["methods"]
    for source in deeplab_sources(config):
        if source not in methods:
            raise ConfigError(f"deeplab.pseudo_masks: {source!r} is not among refine.methods {methods}; add it there or train on another")
    irn = config["irn"]
    for key in ("conf_fg_thres", "conf_bg_thres", "sem_seg_bg_thres"):
        if not 0.0 <= irn[key] <= 1.0:
            raise ConfigError(f"irn.{key}: must lie in [0, 1], got {irn[key]!r}")
    if irn["conf_bg_thres"] > irn["conf_fg_thres"]:
        raise ConfigError(f"irn.conf_bg_thres: {irn['conf_bg_thres']} exceeds irn.conf_fg_thres {irn['conf_fg_thres']}")
    if "irn" in methods:
        if irn["seed_variant"] not in config["maps"]["variants"]:
            raise ConfigError(f"irn.seed_variant: {irn['seed_variant']!r} is not among maps.variants {config['maps']['variants']}")
        if irn["crop_size"] % 4:
            raise ConfigError("irn.crop_size: must be a multiple of the boundary map's stride (4)")


def check_ignored_keys(config: Mapping[str, Any]) -> None:
    """Refuse a key that the chosen data.source would silently ignore, naming it.

    Refused: ``data.root`` and ``data.archives`` with ``source: synthetic`` (the
    generator writes its own root under results/<run_name>/data, so a user's
    VOC/COCO folder would go unread and the run would score synthetic data), and
    a ``deeplab.test_split`` the generator does not write. With voc/coco,
    data.root *and* data.archives is refused by check_archives, and an archive
    key of the other source there too.

    Not refused: the ``synthetic:`` section with voc/coco. config.yaml always
    carries one and Snakemake merges every --configfile over it, so its presence
    (or values) says nothing about what the user set; the paper configs rely on
    that. Likewise data.root: null and data.archives: null / {} are "not set".
    """
    data = config["data"]
    folder_keys = [key for key in FOLDER_PATH_KEYS if (data.get("folder") or {}).get(key)]
    if data["source"] != "folder" and folder_keys:
        raise ConfigError(f"data.folder.{folder_keys[0]}: is ignored unless data.source is 'folder'; set it to null")
    if data["source"] != "synthetic":
        return
    ignored = "is ignored when data.source is 'synthetic' (the pipeline generates its own data under results/<run_name>/data)"
    if data.get("root"):
        raise ConfigError(f"data.root: {data['root']} {ignored}; set data.source to voc or coco to read this root, or data.root to null")
    if data.get("archives"):
        raise ConfigError(f"data.archives: {ignored}; only for data.source voc or coco")
    test_split = (config.get("deeplab") or {}).get("test_split")
    if test_split and test_split not in SYNTHETIC_SPLITS:
        raise ConfigError(f"deeplab.test_split: the synthetic generator writes {SYNTHETIC_SPLITS}, not {test_split!r}; set it to null")


def check_config(config: Mapping[str, Any]) -> None:
    data = config["data"]
    check_ignored_keys(config)
    if data["source"] == "synthetic":
        synthetic = config.get("synthetic", {})
        if synthetic["num_train"] > synthetic["num_train_aug"]:
            raise ConfigError("synthetic.num_train: must not exceed synthetic.num_train_aug (train is a subset of train_aug)")
        if synthetic["min_objects"] > synthetic["max_objects"]:
            raise ConfigError("synthetic.min_objects: must not exceed synthetic.max_objects")
        if synthetic["max_objects"] > len(data["classes"]):
            raise ConfigError("synthetic.max_objects: must not exceed the number of data.classes (one object per class)")
        low, high = synthetic["radius_range"]
        if low > high:
            raise ConfigError("synthetic.radius_range: expected [low, high] with low <= high")
        for split in all_splits(config):
            if split not in SYNTHETIC_SPLITS:
                raise ConfigError(f"data.splits: the synthetic generator writes {SYNTHETIC_SPLITS}, not {split!r}")
    elif data["source"] == "folder":
        check_folder(config)
    elif data.get("archives"):
        check_archives(config)
    else:
        if not data.get("root"):
            raise ConfigError(f"data.root: required when data.source is {data['source']!r} (a VOC/COCO-layout folder)")
        root = Path(data["root"])
        if not root.is_dir():
            raise ConfigError(f"data.root: {root} does not exist or is not a directory")
        for split in all_splits(config):
            path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
            if not path.is_file():
                raise ConfigError(f"data.splits: split list {path} does not exist")
    if data.get("palette") and len(data["palette"]) < len(data["classes"]) + 1:
        raise ConfigError("data.palette: needs one colour for background and one per class")

    if (config.get("logging") or {}).get("tensorboard"):
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ConfigError("logging.tensorboard: TensorBoard is not installed; pip install '.[tensorboard]' (the optional extra), "
                              "or set it to false (every trainer writes its JSON-lines curves either way)")
    classifier = config["classifier"]
    check_weights_file(config, "classifier", classifier["arch"])
    for section in ("affinity", "deeplab", "irn"):
        if section in config:
            check_weights_file(config, section, config[section]["backbone"])
    try:
        check_last_k(config["maps"]["last_k"], ARCHITECTURES[classifier["arch"]]["depth"], classifier["arch"])
    except ValueError as error:
        raise ConfigError(f"maps.last_k: {error}") from None
    patch = ARCHITECTURES[classifier["arch"]]["patch_size"]
    if classifier["version"] == "plus" and classifier["input_size"] % patch:
        raise ConfigError(f"classifier.input_size: MCTformer+ sizes its patch position embedding by it, so it must be a multiple of "
                          f"the {patch} px patch of {classifier['arch']}, got {classifier['input_size']}")
    allowed = MAP_VARIANTS[classifier["version"]]
    for variant in config["maps"]["variants"]:
        if variant not in allowed:
            raise ConfigError(f"maps.variants: {variant!r} needs another model version; {classifier['version']} makes {list(allowed)}")
    for version, variants in config["ablations"]["segmentation"]["variants"].items():
        for variant in variants:
            if variant not in MAP_VARIANTS[version]:
                raise ConfigError(f"ablations.segmentation.variants.{version}: {variant!r} is not a map of MCTformer-{version.upper()} "
                                  f"(it makes {list(MAP_VARIANTS[version])})")
    if "ground_truth" not in config["seeds"]["labels"]:
        raise ConfigError(f"seeds.labels: {config['seeds']['labels']} lacks ground_truth, which PSA's and IRN's seeds (and the "
                          "walk's background threshold) are made of; predicted seeds are evaluated beside them: [ground_truth, predicted]")
    psa = config["psa"]
    if psa["seed_variant"] not in config["maps"]["variants"]:
        raise ConfigError(f"psa.seed_variant: {psa['seed_variant']!r} is not among maps.variants {config['maps']['variants']}")
    if psa["background"] is None and psa["threshold_split"] not in data["splits"]["seed_eval"]:
        raise ConfigError(
            f"psa.threshold_split: {psa['threshold_split']!r} is not in data.splits.seed_eval, so no best threshold is "
            f"computed for it; pick one of {data['splits']['seed_eval']} or pin psa.background"
        )
    stride = backbone_output_stride(config["affinity"]["backbone"])
    if config["affinity"]["crop_size"] % stride:
        raise ConfigError(f"affinity.crop_size: must be a multiple of the backbone's output stride ({stride} for {config['affinity']['backbone']})")
    thresholds = config["seeds"]["thresholds"]
    if thresholds["stop"] < thresholds["start"]:
        raise ConfigError("seeds.thresholds: stop must not be below start")
    check_refinements(config)
    if "resources" in config:
        for rule in config["resources"]["rules"]:
            rule_settings(config, rule)
        check_batch_splits(config)


def check_batch_splits(config: Mapping[str, Any]) -> None:
    """A data-parallel rule's global batch must split evenly over its GPUs; refused here, before any job runs,
    naming both keys (the ranks would refuse it only inside the job)."""
    for rule, section in DISTRIBUTED_RULES.items():
        gpus = rule_settings(config, rule)["gpus"]
        batch_size = config[section]["batch_size"]
        if gpus > 1 and batch_size % gpus:
            raise ConfigError(f"{section}.batch_size: {batch_size} does not split over the {gpus} GPUs of resources.rules.{rule}.gpus "
                              f"(each GPU takes batch_size / gpus); use a multiple of {gpus}")


# Rules that use a GPU when one is there; only they get GPU requests and the GPU partition.
GPU_RULES = ("train_classifier", "predict_labels", "extract_maps", "train_affinity", "random_walk", "train_deeplab", "infer_deeplab",
             "voc_submission", "train_irn", "irn_walk", "ablation_layers_replicate")
# Rules that run data-parallel (torchrun) when given more than one GPU, with the config section whose batch_size
# (the global batch) they split over the GPUs.
DISTRIBUTED_RULES = {"train_classifier": "classifier", "train_deeplab": "deeplab"}


def rule_settings(config: Mapping[str, Any], rule: str) -> dict[str, Any]:
    """resources.default overlaid with resources.rules[rule]: threads, mem_mb, runtime, gpus, shards."""
    resources = config["resources"]
    settings = dict(resources["default"])
    settings.update(resources["rules"].get(rule) or {})
    if settings["gpus"] and rule not in GPU_RULES:
        raise ConfigError(f"resources.rules.{rule}.gpus: {rule} does not use a GPU (GPU rules: {', '.join(GPU_RULES)})")
    if settings["gpus"] > 1 and rule not in DISTRIBUTED_RULES:
        raise ConfigError(f"resources.rules.{rule}.gpus: only {' and '.join(DISTRIBUTED_RULES)} run on several GPUs")
    if settings["shards"] > 1 and rule not in SHARDED_RULES:
        raise ConfigError(f"resources.rules.{rule}.shards: {rule} is not split into shards (per-image rules: {', '.join(SHARDED_RULES)})")
    return settings


def rule_resources(config: Mapping[str, Any], rule: str) -> dict[str, Any]:
    """Snakemake ``resources:`` of a rule, in the names the SLURM executor plugin reads.

    ``gpu`` (+ ``gpu_model``) become ``--gpus``; ``slurm_partition`` the
    partition (the GPU partition for a rule given GPUs). A workstation run
    ignores all but mem_mb/runtime bookkeeping.
    """
    settings = rule_settings(config, rule)
    resources: dict[str, Any] = {"mem_mb": settings["mem_mb"], "runtime": settings["runtime"]}
    partition = config["resources"]["partition"]
    if settings["gpus"]:
        resources["gpu"] = settings["gpus"]
        if config["resources"]["gpu_model"]:
            resources["gpu_model"] = config["resources"]["gpu_model"]
        partition = config["resources"]["gpu_partition"] or partition
    if partition:
        resources["slurm_partition"] = partition
    return resources


def check_weights_file(config: Mapping[str, Any], section: str, model: str) -> None:
    """``<section>.pretrained``, when it names a file, must be one; the error says what to download. A timm model name
    or Hugging Face id is resolved in the local Hugging Face cache by the job that loads it, which stops, before it
    trains, naming the key, the cache folder and the command that fills it (mctformer.models.weights.resolve_weights:
    timm and huggingface_hub are the jobs' packages, not necessarily this process's)."""
    from .models.weights import is_weights_path, weights_hint

    pretrained = config[section].get("pretrained")
    if pretrained and is_weights_path(pretrained) and not Path(pretrained).is_file():
        raise ConfigError(f"{section}.pretrained: weights file {pretrained} does not exist: {weights_hint(model, f'{section}.pretrained')}")


def check_folder(config: Mapping[str, Any]) -> None:
    """data.source folder: the folders data.folder names exist, masks are given (the run scores its seeds, pseudo
    masks and DeepLab against them), and every split the run reads has a list, or is data.splits.train / val."""
    data, folder = config["data"], config["data"]["folder"]
    for key in ("root", "archives"):
        if data.get(key):
            raise ConfigError(f"data.{key}: not used when data.source is 'folder' (data.folder names the images); set it to null")
    for key in ("images", "masks"):
        if not folder.get(key):
            why = "the images" if key == "images" else "the run scores its seeds, pseudo masks and DeepLab against them"
            raise ConfigError(f"data.folder.{key}: required when data.source is 'folder' ({why})")
    for key in ("images", "masks", "split_lists"):
        if folder.get(key) and not Path(folder[key]).is_dir():
            raise ConfigError(f"data.folder.{key}: {folder[key]} does not exist or is not a directory")
    if folder.get("split_lists"):
        for split in all_splits(config):
            path = Path(folder["split_lists"]) / f"{split}.txt"
            if not path.is_file():
                raise ConfigError(f"data.splits: split list {path} does not exist (data.folder.split_lists)")
    else:
        made = (data["splits"]["train"], data["splits"]["val"])
        for split in all_splits(config):
            if split not in made:
                raise ConfigError(f"data.splits: without data.folder.split_lists the run has the splits {list(made)} only "
                                  f"(data.splits.train and val), not {split!r}; name those, or give split lists")
    if (config.get("deeplab") or {}).get("test_split"):
        raise ConfigError("deeplab.test_split: the VOC test-server submission is for VOC roots; set it to null")


def check_archives(config: Mapping[str, Any]) -> None:
    """data.archives: the keys of the source, every named file or folder present, splits the prepare rule writes."""
    data = config["data"]
    source, archives = data["source"], data["archives"]
    if data.get("root"):
        raise ConfigError("data.root / data.archives: give one of them (archives builds the root under results/<run_name>/data)")
    required, optional = ARCHIVE_KEYS[source]
    for key, value in archives.items():
        if key not in required + optional:
            raise ConfigError(f"data.archives.{key}: not used for data.source {source!r} (it takes {', '.join(required + optional)})")
        if value is not None and not Path(value).exists():
            raise ConfigError(f"data.archives.{key}: {value} does not exist")
    for key in required:
        if not archives.get(key):
            raise ConfigError(f"data.archives.{key}: required for data.source {source!r}")
    prepared = PREPARED_SPLITS[source] + (("test",) if archives.get("test") else ())
    for split in all_splits(config):
        if split not in prepared:
            raise ConfigError(f"data.splits: the prepared {source} root has the lists {prepared}, not {split!r}")
    test_split = config.get("deeplab", {}).get("test_split")
    if test_split and test_split not in prepared:
        raise ConfigError(
            f"deeplab.test_split: {test_split!r} is not prepared from data.archives; add data.archives.test "
            f"(VOC2012test.tar) or set deeplab.test_split to null"
        )
