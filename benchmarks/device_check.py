"""The Python half of benchmarks/device_check.sh: one subcommand per part, each writing its JSON after every sub-check
(so a part cut off by its timeout keeps what already ran). ``--dry`` runs every part on the CPU at toy sizes: the figures
then mean nothing, it only proves the script works end to end on a machine without a GPU.

    python benchmarks/device_check.py env OUT.json [--dry]
    python benchmarks/device_check.py golden WORK OUT.json [--dry]   # the golden parity cases on the device, float32 and AMP
    python benchmarks/device_check.py chain WORK OUT.json [--dry]    # the tiny inference chain on the device against the CPU
    python benchmarks/device_check.py ddp OUT.json [--dry]           # one world-size-1 DDP step (NCCL; gloo when --dry)
    python benchmarks/device_check.py merge OUT_DIR                  # OUT_DIR/parts/*.json -> OUT_DIR/device_check.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # golden_cases


def tiny_config() -> dict:
    """The tests' tiny config (mctformer.testing). Its ``device`` key is never read here: each part places its
    networks itself (:func:`device_for`)."""
    import yaml

    from mctformer import testing
    from mctformer.config import load_config

    shipped = load_config((), default_file=REPO / "config.yaml")[0]
    classic = yaml.safe_load((REPO / "workflow" / "configs" / "synthetic_classic.yaml").read_text())["synthetic"]
    return testing.tiny_config(shipped, classic, run_name="device_check", device="cpu")


def device_for(dry: bool) -> torch.device:
    return torch.device("cpu") if dry or not torch.cuda.is_available() else torch.device("cuda")


class Part:
    """The results of one part, rewritten to ``path`` after every check; a check's exception is recorded, not raised."""

    def __init__(self, path: str) -> None:
        self.path, self.results = Path(path), {}

    def check(self, key: str, function: Callable[[], Any]) -> None:
        started = time.perf_counter()
        try:
            self.results[key] = function()
        except Exception as error:  # noqa: BLE001 - the device check reports every failure and goes on
            self.results[key] = {"error": f"{type(error).__name__}: {str(error)[:500]}"}
        if isinstance(self.results[key], dict):
            self.results[key]["seconds"] = round(time.perf_counter() - started, 2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.results, indent=1, default=str))


# ------------------------------------------------------------------------------------------------- env --
def env(out: str, dry: bool) -> None:
    import platform
    import subprocess

    from mctformer.training.common import resolve_device

    part = Part(out)

    def versions() -> dict:
        result = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                  "python": platform.python_version(), "cuda_available": torch.cuda.is_available(),
                  "device_auto_resolves_to": str(resolve_device("auto")), "device_used": str(device_for(dry)), "dry": dry}
        if torch.cuda.is_available():
            result.update(gpu=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                          bf16_supported=torch.cuda.is_bf16_supported(), nccl=str(torch.cuda.nccl.version()))
        try:
            result["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                                  capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError) as error:
            result["nvidia_smi"] = repr(error)
        return result
    part.check("versions", versions)


# ---------------------------------------------------------------------------------------------- golden --
def golden(work: str, out: str, dry: bool) -> None:
    """The golden fixtures (tests/test_reference_parity.py's cases) on the device: extraction in float32 and under
    maps.amp (float16 autocast on CUDA), the PSA walk's scores and masks, at the README's tolerances."""
    import shutil

    from PIL import Image

    import golden_cases as G
    from mctformer.affinity import neighbour_affinity, pair_indices
    from mctformer.artifacts import load_map_file, read_label_png, save_map_file, voc_palette
    from mctformer.data.voc import VOCLayout
    from mctformer.localize import extract_maps
    from mctformer.psa.drivers import random_walk_masks
    from mctformer.psa.geometry import seed_scores_on_grid
    from mctformer.psa.walk import random_walk, transition_matrix_transposed

    device, work_dir, part = device_for(dry), Path(work), Part(out)
    root = work_dir / "golden" / "voc"
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for image_id in G.IMAGE_IDS:
        shutil.copy(G.GOLDEN / "images" / f"{image_id}.png", root / "JPEGImages" / f"{image_id}.jpg")
    model = G.golden_model("v2")

    def extraction(scales: str, amp: bool) -> dict:
        reference = np.load(G.GOLDEN / "extract" / f"maps_{scales}_fused.npz")
        labels = {i: np.isin(np.arange(G.NUM_CLASSES), reference[f"{i}_classes"]).astype(np.float32) for i in G.IMAGE_IDS}
        folder = work_dir / "golden" / f"{scales}_{'amp' if amp else 'fp32'}"
        extract_maps(model, VOCLayout(root, G.NUM_CLASSES), G.IMAGE_IDS, labels, {"fused": folder}, scales=G.EXTRACTIONS[scales], flip=True,
                     last_k=3, feature_temperature=0.1, batch_size=4, device=device, num_overlays=0, **{**G.REFERENCE_MAPS, "amp": amp})
        difference, agreement = 0.0, 1.0
        for image_id in G.IMAGE_IDS:
            ours, expected = load_map_file(folder / f"{image_id}.npz")[1], reference[image_id].astype(np.float32)
            difference = max(difference, float(np.abs(ours - expected).max()))
            agreement = min(agreement, float((G.seeds_of(ours) == G.seeds_of(expected)).mean()))
        return {"max_abs_diff": difference, "min_seed_agreement": agreement, "within_readme_tolerance": difference <= 5e-4 and agreement >= 0.999}

    for scales in G.EXTRACTIONS:
        for amp in (False, True):
            part.check(f"extraction_{scales}_{'amp_float16' if amp else 'float32'}", lambda scales=scales, amp=amp: extraction(scales, amp))

    def walk(grid: str) -> dict:
        case, labels, cams = G.walk_case(grid)
        height, width = (int(v) for v in case["image_size"])
        folder = work_dir / "golden" / f"walk_{grid}"
        (folder / "voc" / "JPEGImages").mkdir(parents=True, exist_ok=True)
        (folder / "maps").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(folder / "voc" / "JPEGImages" / "walk.jpg")
        save_map_file(folder / "maps" / "walk.npz", labels, cams, dtype="float32")
        seeds, _ = seed_scores_on_grid(labels, cams, G.BG_THRESHOLD, 8)
        h, w = seeds.shape[1:]
        sources, targets = (torch.from_numpy(a).to(device) for a in pair_indices(h, w, 5, "reference"))
        features = torch.from_numpy(case["features"].astype(np.float32))[None].to(device)
        transition_t = transition_matrix_transposed(neighbour_affinity(features, 5, "reference"), sources, targets, h * w, 8)
        result = {}
        for logt in (6, 8):
            random_walk_masks(G.InjectedFeatures(case["features"]), VOCLayout(folder / "voc", G.NUM_CLASSES), ["walk"], str(folder / "maps"),
                              str(folder / f"masks{logt}"), background=G.BG_THRESHOLD, beta=8, logt=logt, radius=5, palette=voc_palette(),
                              device=device, batch_size=1, scale=1.0, pair_sources="reference", amp="float32")
            agreement = float((read_label_png(folder / f"masks{logt}" / "walk.png") == read_label_png(G.GOLDEN / "psa" / f"walk_{grid}_logt{logt}.png")).mean())
            walked = random_walk(seeds.to(device).reshape(seeds.shape[0], -1), transition_t, 2**logt).reshape(seeds.shape).cpu().numpy()
            relative = G.relative(walked, case[f"scores_logt{logt}"])
            result[f"logt{logt}"] = {"mask_agreement": agreement, "scores_relative": relative,
                                     "within_readme_tolerance": agreement >= 0.9995 and relative <= 1e-4}
        return result

    for grid in G.WALKS[:1] if dry else G.WALKS:
        part.check(f"psa_walk_{grid}", lambda grid=grid: walk(grid))


# ----------------------------------------------------------------------------------------------- chain --
def chain(work: str, out: str, dry: bool) -> None:
    """The tiny chain's inference stages with random weights on a synthetic root, on the device against the CPU:
    extraction (maps and seeds), the PSA walk (masks), the IRN walk (masks), DeepLab inference (predictions), each
    under the config's float32 default and, on the device, under bfloat16 inference autocast too."""
    from mctformer import testing
    from mctformer.artifacts import load_map_file, read_label_png, voc_palette
    from mctformer.crf import ScaledCRF
    from mctformer.data.synthetic import generate_synthetic_voc
    from mctformer.data.voc import VOCLayout
    from mctformer.irn.drivers import irn_walk_masks
    from mctformer.localize import extract_maps
    from mctformer.models.affinitynet import AffinityNet
    from mctformer.psa.drivers import random_walk_masks
    from mctformer.segmentation import segment_images
    from mctformer.training.classifier import build_classifier
    from mctformer.training.deeplab import build_deeplab
    from mctformer.training.irn import build_boundary_net

    device, work_dir, part = device_for(dry), Path(work), Part(out)
    cpu = torch.device("cpu")
    config = tiny_config()
    root = work_dir / "voc"
    if not (root / "JPEGImages").is_dir():
        generate_synthetic_voc(root, testing.tiny_spec(config), palette=None, workers=1)
    layout = VOCLayout(root, len(config["data"]["classes"]))
    ids = layout.read_ids(config["data"]["splits"]["train"])[: 8 if dry else 64]
    num_classes = len(config["data"]["classes"])
    labels = {}
    for image_id in ids:
        present = np.unique(layout.load_mask(image_id))
        labels[image_id] = np.isin(np.arange(num_classes), present[(present > 0) & (present < 255)] - 1).astype(np.float32)
    maps_settings = config["maps"]
    torch.manual_seed(0)
    classifier = build_classifier({**config["classifier"], "pretrained": None}, num_classes).eval()

    def extraction() -> dict:
        from golden_cases import seeds_of

        folders = {}
        for where in (cpu, device):
            folders[where.type] = work_dir / f"maps_{where.type}"
            extract_maps(classifier, layout, ids, labels, {"fused": folders[where.type]}, scales=maps_settings["scales"], flip=maps_settings["flip"],
                         last_k=maps_settings["last_k"], feature_temperature=maps_settings["feature_temperature"], batch_size=maps_settings["batch_size"],
                         device=where, num_overlays=0, resize=maps_settings["resize"], remainder=maps_settings["remainder"],
                         position_embedding=maps_settings["position_embedding"], amp=maps_settings["amp"], storage_dtype="float32",
                         workers=maps_settings["workers"])
            classifier.to(cpu)
        difference, agreement = 0.0, 1.0
        for image_id in ids:
            a, b = (load_map_file(folders[k] / f"{image_id}.npz")[1] for k in (cpu.type, device.type))
            difference, agreement = max(difference, float(np.abs(a - b).max())), min(agreement, float((seeds_of(a) == seeds_of(b)).mean()))
        return {"maps_max_abs_diff": difference, "min_seed_agreement": agreement}

    def masks_agreement(folder_a: Path, folder_b: Path) -> float:
        return float(np.mean([(read_label_png(folder_a / f"{i}.png") == read_label_png(folder_b / f"{i}.png")).mean() for i in ids]))

    def psa_walk() -> dict:
        psa, affinity = config["psa"], config["affinity"]
        torch.manual_seed(0)
        net = AffinityNet(backbone=affinity["backbone"], pretrained=None, feature_dim=affinity["feature_dim"])
        folders = {}
        for where, amp in ((cpu, "float32"), (device, "float32"), (device, "bfloat16")):
            folders[(where.type, amp)] = work_dir / f"psa_{where.type}_{amp}"
            random_walk_masks(net, layout, ids, str(work_dir / "maps_cpu"), str(folders[(where.type, amp)]), background=0.3, beta=psa["beta"],
                              logt=psa["logt"], radius=affinity["radius"], palette=voc_palette(), device=where, batch_size=psa["batch_size"],
                              scale=psa["walk_scale"], pair_sources=affinity["pair_sources"], amp=amp)
            net.to(cpu)
        return {f"mask_agreement_{amp}_vs_cpu_float32": masks_agreement(folders[("cpu", "float32")], folders[(device.type, amp)])
                for amp in ("float32", "bfloat16")}

    def irn_walk() -> dict:
        irn = config["irn"]
        torch.manual_seed(0)
        net = build_boundary_net({**irn, "pretrained": None})
        folders = {}
        for where, amp in ((cpu, "float32"), (device, "float32"), (device, "bfloat16")):
            folders[(where.type, amp)] = work_dir / f"irn_{where.type}_{amp}"
            irn_walk_masks(net, layout, ids, str(work_dir / "maps_cpu"), str(folders[(where.type, amp)]), beta=irn["beta"], exp_times=irn["exp_times"],
                           radius=irn["walk_radius"], bg_threshold=irn["sem_seg_bg_thres"], scale=irn["walk_scale"], batch_size=irn["walk_batch_size"],
                           palette=voc_palette(), device=where, amp=amp)
            net.to(cpu)
        return {f"mask_agreement_{amp}_vs_cpu_float32": masks_agreement(folders[("cpu", "float32")], folders[(device.type, amp)])
                for amp in ("float32", "bfloat16")}

    def deeplab() -> dict:
        settings = config["deeplab"]
        torch.manual_seed(0)
        model = build_deeplab({**settings, "pretrained": None}, num_classes + 1)
        folders = {}
        for where, amp in ((cpu, "float32"), (device, "float32"), (device, "bfloat16")):
            folders[(where.type, amp)] = work_dir / f"deeplab_{where.type}_{amp}"
            segment_images(model, layout, ids, str(folders[(where.type, amp)]), None, scales=settings["scales"], flip=settings["flip_inference"],
                           fuse=settings["fuse"], crf=ScaledCRF.from_config(settings["crf"]), palette=voc_palette(), device=where, workers=1,
                           resize=settings["inference_resize"], normalise_crf_scores=settings["crf"]["normalise_scores"], amp=amp,
                           loader_workers=settings["inference_workers"])
            model.to(cpu)
        return {f"prediction_agreement_{amp}_vs_cpu_float32": masks_agreement(folders[("cpu", "float32")], folders[(device.type, amp)])
                for amp in ("float32", "bfloat16")}

    part.check("extraction", extraction)
    part.check("psa_walk", psa_walk)
    part.check("irn_walk", irn_walk)
    part.check("deeplab_inference", deeplab)


# ------------------------------------------------------------------------------------------------- ddp --
def ddp(out: str, dry: bool) -> None:
    """One process group of world size 1 (NCCL on CUDA, gloo when --dry) and two DistributedDataParallel training steps
    of the tiny classifier and DeepLab under the trainers' autocast: NCCL init, the reducer, unused parameters."""
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    from mctformer.models.mctformer import classification_loss
    from mctformer.training.classifier import build_classifier
    from mctformer.training.common import autocast
    from mctformer.training.deeplab import build_deeplab

    device, part, config = device_for(dry), Part(out), tiny_config()
    classes = len(config["data"]["classes"])
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29563")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(0)
    dist.init_process_group(backend, rank=0, world_size=1)
    try:
        def steps(model: torch.nn.Module, loss_of: Callable[[torch.nn.Module], torch.Tensor], amp: bool) -> dict:
            wrapped = DistributedDataParallel(model.to(device), device_ids=[0] if device.type == "cuda" else None)
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
            scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")
            losses = []
            for _ in range(2):
                with autocast(device, amp):
                    loss = loss_of(wrapped)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                losses.append(float(loss))
            return {"backend": dist.get_backend(), "losses": losses, "finite": bool(np.isfinite(losses).all())}

        size = config["classifier"]["input_size"]
        images, targets = torch.randn(4, 3, size, size, device=device), (torch.rand(4, classes, device=device) < 0.3).float()
        part.check("classifier", lambda: steps(build_classifier({**config["classifier"], "pretrained": None}, classes),
                                               lambda net: classification_loss(net(images), targets), config["classifier"]["amp"]))
        crop = config["deeplab"]["crop_size"]
        pictures, masks = torch.randn(2, 3, crop, crop, device=device), torch.randint(0, classes + 1, (2, crop, crop), device=device)
        part.check("deeplab", lambda: steps(build_deeplab({**config["deeplab"], "pretrained": None}, classes + 1),
                                            lambda net: F.cross_entropy(net(pictures).float(), masks, ignore_index=255), config["deeplab"]["amp"]))
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------- merge --
def merge(out_dir: str) -> None:
    """Every part's JSON and status, and the tail of every log, in OUT_DIR/device_check.json."""
    out = Path(out_dir)
    merged: dict[str, Any] = {"generated": time.strftime("%Y-%m-%d %H:%M:%S"), "parts": {}, "status": {}, "logs_tail": {}}
    for path in sorted((out / "parts").glob("*.json")):
        target = merged["status"] if path.name.endswith(".status.json") else merged["parts"]
        try:
            target[path.name.removesuffix(".status.json").removesuffix(".json")] = json.loads(path.read_text())
        except ValueError as error:
            target[path.stem] = {"unreadable": repr(error)}
    for path in sorted((out / "logs").glob("*.log")):
        merged["logs_tail"][path.stem] = path.read_text(errors="replace").splitlines()[-20:]
    (out / "device_check.json").write_text(json.dumps(merged, indent=1, default=str))
    failed = {name: status for name, status in merged["status"].items() if status.get("rc") != 0}
    print(json.dumps({"failed_parts": failed} if failed else {"all parts rc": 0}, indent=1))


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--dry"]
    is_dry = "--dry" in sys.argv[1:]
    command, *rest = arguments
    if command == "merge":
        merge(*rest)
    else:
        {"env": env, "golden": golden, "chain": chain, "ddp": ddp}[command](*rest, dry=is_dry)
