"""Property-based tests (hypothesis) of the metric code and the config schema."""

import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from snakemake.utils import validate

from helpers.workflow import REPO, tiny_config
from mctformer.metrics import confusion_matrix, dataset_confusion, scores_from_confusion, seed_prediction, sweep_image, threshold_grid

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
labels_maps = arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.sampled_from([0, 1, 2, 3, 255]))


@given(st.lists(labels_maps, min_size=1, max_size=5))
def test_a_perfect_prediction_scores_one(gts):
    pairs = [(gt, np.where(gt == 255, 0, gt)) for gt in gts]
    scores = scores_from_confusion(dataset_confusion(pairs, 4))
    assert np.isnan(scores["miou"]) or scores["miou"] == 1.0
    assert np.isnan(scores["miou"]) == all((gt == 255).all() for gt in gts)


@given(st.lists(st.tuples(labels_maps, st.integers(0, 2**31 - 1)), min_size=1, max_size=5), st.randoms())
def test_dataset_miou_does_not_depend_on_image_order(items, rng):
    pairs = [(gt, np.random.default_rng(seed).integers(0, 4, gt.shape)) for gt, seed in items]
    shuffled = list(pairs)
    rng.shuffle(shuffled)
    assert np.array_equal(dataset_confusion(pairs, 4), dataset_confusion(shuffled, 4))


@settings(max_examples=50)
@given(st.integers(0, 3), st.integers(0, 2**31 - 1))
def test_sweep_rows_count_every_labelled_pixel(num_classes_present, seed):
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.choice(np.arange(1, 5), num_classes_present, replace=False))
    maps = rng.random((num_classes_present, 5, 7)).astype(np.float32)
    gt = rng.choice([0, 1, 2, 3, 4, 255], size=(5, 7))
    confusions = sweep_image(labels, maps, gt, threshold_grid(0, 0.6, 0.05), 5)
    assert (confusions.sum(axis=(1, 2)) == (gt != 255).sum()).all()
    assert np.array_equal(confusions[0], confusion_matrix(gt, seed_prediction(labels, maps, np.float32(0.0)), 5))


valid_values = {
    ("classifier", "epochs"): st.integers(1, 1000),
    ("classifier", "batch_size"): st.integers(1, 4096),
    ("maps", "last_k"): st.integers(1, 12),
    ("seeds", "thresholds", "step"): st.floats(1e-4, 1.0),
    ("psa", "alpha_low"): st.floats(0.01, 64),
}
invalid_values = {
    ("classifier", "epochs"): st.one_of(st.integers(max_value=0), st.text(), st.none()),
    # JSON Schema counts 2.0 as an integer; any other float is refused
    ("classifier", "batch_size"): st.one_of(st.integers(max_value=0), st.floats(allow_nan=False).filter(lambda v: not float(v).is_integer())),
    ("maps", "scales"): st.just([]),
    ("seeds", "thresholds", "stop"): st.one_of(st.floats(1.0001, 100), st.floats(-100, -0.0001)),
    ("psa", "alpha_low"): st.floats(-100, 0),
}


def _set(config, path, value):
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(valid_values)).flatmap(lambda path: st.tuples(st.just(path), valid_values[path])))
def test_schema_accepts_values_in_range(case):
    path, value = case
    config = copy.deepcopy(tiny_config())
    _set(config, path, value)
    validate(config, SCHEMA)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(invalid_values)).flatmap(lambda path: st.tuples(st.just(path), invalid_values[path])))
def test_schema_rejects_values_out_of_range_naming_the_key(case):
    path, value = case
    config = copy.deepcopy(tiny_config())
    _set(config, path, value)
    try:
        validate(config, SCHEMA)
    except Exception as error:
        assert path[-1] in str(error)
    else:
        raise AssertionError(f"{path} = {value!r} was accepted")
