"""Measured differences from the authors' code on the golden data: our default behaviour beside reference mode.

    .venv/bin/python benchmarks/parity_table.py

Each row is one golden case (tests/fixtures/reference/README.md gives its tolerance): the worst
difference with the embedded default's settings ("ours") and with the paper configs' reference-mode
settings ("reference mode"), computed by the same functions tests/test_reference_parity.py asserts on, on the
cases benchmarks/golden_cases.py reads for both (this script imports nothing from tests/).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import golden_cases as golden  # the golden fixtures' readers, shared with tests/test_reference_parity.py
from mctformer.affinity import neighbour_affinity, pair_indices, pooled_grid_labels
from mctformer.artifacts import load_map_file, read_label_png, save_map_file, voc_palette
from mctformer.config import load_config
from mctformer.data.voc import VOCLayout
from mctformer.localize import extract_maps
from mctformer.metrics import best_threshold, scores_from_confusion, sweep_image, sweep_table, threshold_grid
from mctformer.models.mctformer import resample_position_embedding
from mctformer.psa.drivers import random_walk_masks
from mctformer.psa.geometry import seed_scores_on_grid
from mctformer.psa.labels import crf_image, crf_labels
from mctformer.psa.walk import random_walk, transition_matrix_transposed

GOLDEN = golden.GOLDEN
CONFIG = load_config(default_file=Path(__file__).resolve().parents[1] / "config.yaml")[0]  # "ours": the shipped defaults


def ours_extraction(scales: list[float]) -> dict:
    """extract_maps' keyword arguments as config.yaml's ``maps`` section sets them, on the CPU, for the golden case's scales."""
    maps = CONFIG["maps"]
    settings = {key: maps[key] for key in ("feature_temperature", "resize", "remainder", "position_embedding", "amp", "storage_dtype", "workers")}
    return {**settings, "scales": scales, "flip": True, "last_k": 3, "batch_size": 4, "num_overlays": maps["overlays"], "device": "cpu"}


rows: list[tuple[str, str, str]] = []


def add(case: str, ours: str, reference: str) -> None:
    rows.append((case, ours, reference))
    print(f"| {case} | {ours} | {reference} |", flush=True)


def model_rows(models) -> None:
    for version in ("v1", "v2"):
        for name in golden.MODEL_INPUTS:
            reference = np.load(GOLDEN / "model" / f"model_{version}_{name}.npz")
            worst = {}
            for mode in ("size", "reference_scale_factor"):
                arrays = golden.forward_arrays(models[version], name, mode)
                worst[mode] = max(golden.relative(arrays[k], reference[k]) for k in reference.files)
            add(f"1 model {version} {name}: worst rel over logits and maps (tol 1e-4)", f"{worst['size']:.2e}", f"{worst['reference_scale_factor']:.2e}")
    pos = np.load(GOLDEN / "model" / "pos_embed.npz")
    for name, grid in golden.GRID_OF.items():
        values = [golden.relative(resample_position_embedding(models["v2"].pos_embed.detach(), (14, 14), grid, m)[0].numpy(), pos[f"pos_{name}"])
                  for m in ("size", "reference_scale_factor")]
        add(f"1 position embedding {name} rel (tol 1e-4)", f"{values[0]:.2e}", f"{values[1]:.2e}")


def extraction_rows(models, root: Path, work: Path) -> None:
    layout = VOCLayout(root, golden.NUM_CLASSES)
    for scales, values in golden.EXTRACTIONS.items():
        for variant in ("fused", "fused_refined"):
            reference = np.load(GOLDEN / "extract" / f"maps_{scales}_{variant}.npz")
            labels = {i: np.isin(np.arange(golden.NUM_CLASSES), reference[f"{i}_classes"]).astype(np.float32) for i in golden.IMAGE_IDS}
            cells = []
            ours = ours_extraction(values)
            for mode, settings in (("ours", ours), ("reference", {**ours, **golden.REFERENCE_MAPS})):
                out = work / f"{scales}_{variant}_{mode}"
                extract_maps(models["v2"], layout, golden.IMAGE_IDS, labels, {variant: out}, **settings)
                worst, agreement = 0.0, 1.0
                for image_id in golden.IMAGE_IDS:
                    maps, expected = load_map_file(out / f"{image_id}.npz")[1], reference[image_id].astype(np.float32)
                    worst = max(worst, float(np.abs(maps - expected).max()))
                    agreement = min(agreement, float((golden.seeds_of(maps) == golden.seeds_of(expected)).mean()))
                cells.append(f"{worst:.2e} / {100 * agreement:.3f} %")
            add(f"2 extraction {scales} {variant}: max abs / worst seed agreement (tol 5e-4 / 99.9 %)", *cells)
    maps_file = np.load(GOLDEN / "extract" / "maps_s1_fused_refined.npz")
    for name, alpha in (("la", 1), ("ha", 12)):
        cells = []
        for source in ("decoded", "normalised_roundtrip"):
            worst = 1.0
            for image_id in golden.IMAGE_IDS:
                image = crf_image(golden.picture(image_id), source)
                ours = crf_labels(image, maps_file[f"{image_id}_classes"].astype(np.int64) + 1, maps_file[image_id].astype(np.float32), alpha,
                                  golden.REFERENCE_PSA_CRF)
                worst = min(worst, float((ours == read_label_png(GOLDEN / "extract" / f"crf_{name}_{image_id}.png")).mean()))
            cells.append(f"{100 * worst:.3f} %")
        add(f"2 {name} CRF labels, worst image agreement (tol 99.9 %)", *cells)


def seed_rows() -> None:
    thresholds = threshold_grid(0.0, 0.59, 0.01)
    for name in ("typical", "bimodal"):
        confusion = sum(sweep_image(labels, maps, gt, thresholds, golden.NUM_CLASSES + 1) for gt, labels, maps in golden.golden_seed_set(name))
        curve = np.load(GOLDEN / "seeds" / name / "curve.npz")
        answer = json.loads((GOLDEN / "seeds" / name / "curve.json").read_text())["early_stopping_best"]
        scores = scores_from_confusion(confusion)
        add(f"3 seeds {name}: reported mIoU vs the reference's curve (tol 1e-12)",
            f"{np.abs(scores['miou'] - curve['miou']).max():.2e}", f"{np.abs(scores['miou_all_labels'] - curve['miou']).max():.2e}")
        table = sweep_table(confusion, thresholds, ["background"] + [f"c{i}" for i in range(golden.NUM_CLASSES)])
        seeds = CONFIG["seeds"]
        ours = best_threshold(table, convention=seeds["miou_convention"], selection=seeds["selection"])
        reference = best_threshold(table, convention="all_labels", selection="first_non_improving")
        add(f"3 seeds {name}: best threshold (the reference answers {answer['threshold']:.2f})", f"{ours['threshold']:.2f}", f"{reference['threshold']:.2f}")


def walk_rows(work: Path) -> None:
    for grid in golden.WALKS:
        case, labels, cams = golden.walk_case(grid)
        seeds, _ = seed_scores_on_grid(labels, cams, golden.BG_THRESHOLD, 8)
        height, width = seeds.shape[1:]
        features = torch.from_numpy(case["features"].astype(np.float32))[None]
        for logt in (6, 8):
            cells = []
            for sources in ("all", "reference"):
                src, dst = (torch.from_numpy(a) for a in pair_indices(height, width, 5, sources))
                transition_t = transition_matrix_transposed(neighbour_affinity(features, 5, sources), src, dst, height * width, 8)
                walked = random_walk(seeds.reshape(seeds.shape[0], -1), transition_t, 2**logt).reshape(seeds.shape).numpy()
                out = work / f"walk_{grid}_{logt}_{sources}"
                image_height, image_width = (int(v) for v in case["image_size"])
                (out / "voc" / "JPEGImages").mkdir(parents=True)
                Image.fromarray(np.zeros((image_height, image_width, 3), np.uint8)).save(out / "voc" / "JPEGImages" / "walk.jpg")
                (out / "maps").mkdir()
                save_map_file(out / "maps" / "walk.npz", labels, cams, dtype="float32")
                random_walk_masks(golden.InjectedFeatures(case["features"]), VOCLayout(out / "voc", golden.NUM_CLASSES), ["walk"], str(out / "maps"),
                                  str(out / "masks"), background=golden.BG_THRESHOLD, beta=8, logt=logt, radius=5, palette=voc_palette(),
                                  device=torch.device("cpu"), batch_size=1, scale=1.0, pair_sources=sources, amp="float32")
                agreement = (read_label_png(out / "masks" / "walk.png") == read_label_png(GOLDEN / "psa" / f"walk_{grid}_logt{logt}.png")).mean()
                cells.append(f"{golden.relative(walked, case[f'scores_logt{logt}']):.2e} / {100 * agreement:.3f} %")
            add(f"4 walk {grid} logt {logt}: scores rel / mask agreement (tol 1e-4 / 99.95 %)", *cells)
    case = np.load(GOLDEN / "psa" / "affinity_labels.npz")
    full = case["confident_full"]
    centre = full[4::8, 4::8]
    pooled = pooled_grid_labels(case["la"].astype(np.float32), case["ha"].astype(np.float32), 8, np.arange(len(case["keys"])))
    expected = case["grid_nocrop"]
    centre_agreement = (centre == expected[: centre.shape[0], : centre.shape[1]]).sum() / expected.size
    add("4 AffinityNet grid labels, no crop, agreement (tol exact)", f"{100 * centre_agreement:.3f} %", f"{100 * (pooled == expected).mean():.3f} %")


def main() -> None:
    models = {version: golden.golden_model(version) for version in ("v1", "v2")}
    print("| case | ours (config.yaml) | reference mode (voc12.yaml) |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "voc"
        (root / "JPEGImages").mkdir(parents=True)
        for image_id in golden.IMAGE_IDS:
            (root / "JPEGImages" / f"{image_id}.jpg").write_bytes((GOLDEN / "images" / f"{image_id}.png").read_bytes())
        model_rows(models)
        extraction_rows(models, root, work)
        seed_rows()
        walk_rows(work)


if __name__ == "__main__":
    main()
