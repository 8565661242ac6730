"""The small helpers the stages share: how a stage's config keys become its dataset, walk and CRF settings."""

from __future__ import annotations

import json

import pytest

from mctformer.artifacts import read_json, write_json
from mctformer.crf import CRFParams
from mctformer.data.layout import DatasetRef, first_ids, ids_of_splits
from mctformer.settings import MapGeometry, WalkSettings


class Lists:
    """A reader with fixed split lists."""

    def __init__(self, splits: dict[str, list[str]]):
        self.splits = splits

    def read_ids(self, split: str) -> list[str]:
        return list(self.splits[split])


def test_first_ids_and_ids_of_splits():
    reader = Lists({"train": ["a", "b", "c"], "val": ["c", "d"]})
    assert first_ids(reader, "train", 2) == ["a", "b"]
    assert first_ids(reader, "train", None) == first_ids(reader, "train", 0) == ["a", "b", "c"]
    assert ids_of_splits(reader, ["train", "val"]) == ["a", "b", "c", "d"]


def test_dataset_and_walk_take_their_keys_and_leave_the_rest():
    keys = {"layout": "voc", "classes": ["disc", "square"], "beta": 8, "logt": 4, "radius": 5, "pair_sources": "all", "split": "val"}
    dataset, rest = DatasetRef.take("/data", keys)
    assert dataset == DatasetRef("/data", "voc", ("disc", "square"))
    walk, rest = WalkSettings.take(rest)
    assert walk == WalkSettings(beta=8, logt=4, radius=5, pair_sources="all")
    assert rest == {"split": "val"}
    assert "layout" in keys  # the rule's keys are left as they were
    with pytest.raises(KeyError):
        WalkSettings.take({"beta": 8})
    geometry, rest = MapGeometry.take({"resize": "torch_bilinear", "remainder": "resize", "position_embedding": "size", "amp": False, "flip": True})
    assert geometry == MapGeometry("torch_bilinear", "resize", "size", False) and rest == {"flip": True}


def test_crf_params_from_a_config_section_ignore_its_other_keys():
    section = {"iterations": 10, "gaussian_sxy": 3, "gaussian_compat": 3, "bilateral_sxy": 50, "bilateral_srgb": 5,
               "bilateral_compat": 10, "spatial_scale": "auto", "reference_size": 500, "gt_prob": 0.7}
    assert CRFParams.from_config(section) == CRFParams(10, 3, 3, 50, 5, 10)


def test_read_json_reads_what_write_json_wrote(tmp_path):
    write_json(tmp_path / "a.json", {"miou": 0.5, "split": "val"})
    assert read_json(tmp_path / "a.json") == {"miou": 0.5, "split": "val"} == json.loads((tmp_path / "a.json").read_text())
