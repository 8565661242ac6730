import numpy as np
import pytest
from PIL import Image

from conftest import TINY_SPEC
from mctformer.artifacts import voc_palette
from mctformer.data.synthetic import SyntheticSpec, render_image
from mctformer.data.voc import VOCLayout


def test_render_is_deterministic_per_seed_and_index():
    image_a, label_a = render_image(TINY_SPEC, 5)
    image_b, label_b = render_image(TINY_SPEC, 5)
    assert np.array_equal(image_a, image_b) and np.array_equal(label_a, label_b)
    other_seed = SyntheticSpec(**{**TINY_SPEC.__dict__, "seed": TINY_SPEC.seed + 1})
    assert not np.array_equal(render_image(other_seed, 5)[0], image_a)
    assert not np.array_equal(render_image(TINY_SPEC, 6)[0], image_a)


def test_generated_tree_has_voc_layout(synthetic_root):
    layout = VOCLayout(synthetic_root, TINY_SPEC.num_classes)
    train_aug = layout.read_ids("train_aug")
    train = layout.read_ids("train")
    val = layout.read_ids("val")
    assert len(train_aug) == TINY_SPEC.num_train_aug and len(val) == TINY_SPEC.num_val
    assert train == train_aug[: TINY_SPEC.num_train]
    assert not set(val) & set(train_aug)
    for image_id in train_aug[:5] + val[:5]:
        with Image.open(layout.mask_path(image_id)) as mask:
            assert mask.mode == "P"
            assert np.array_equal(np.asarray(mask.getpalette()[:3 * 256]).reshape(256, 3), voc_palette())
        image = layout.load_image(image_id)
        assert image.shape == (TINY_SPEC.image_size, TINY_SPEC.image_size, 3)
        assert layout.load_mask(image_id, expected_shape=image.shape[:2]).max() <= 255


def test_files_equal_a_second_generation(synthetic_root, tmp_path):
    from mctformer.data.synthetic import generate_synthetic_voc

    again = tmp_path / "again"
    generate_synthetic_voc(again, TINY_SPEC, palette=None, workers=2, chunk=7)
    for path in sorted(synthetic_root.rglob("*")):
        if path.is_file():
            assert (again / path.relative_to(synthetic_root)).read_bytes() == path.read_bytes(), path


def test_labels_follow_voc_conventions():
    for index in range(20):
        image, label = render_image(TINY_SPEC, index)
        values = set(np.unique(label).tolist())
        assert values <= {0, 255, *range(1, TINY_SPEC.num_classes + 1)}
        present = values - {0, 255}
        assert TINY_SPEC.min_objects <= len(present) <= TINY_SPEC.max_objects
        # every object is fully surrounded by the ignore band: a class pixel never touches background
        for value in present:
            inside = label == value
            grown = np.zeros_like(inside)
            grown[1:, :] |= inside[:-1, :]
            grown[:-1, :] |= inside[1:, :]
            grown[:, 1:] |= inside[:, :-1]
            grown[:, :-1] |= inside[:, 1:]
            assert not (grown & (label == 0)).any()
            assert (label == value).sum() >= 8


def test_object_edges_are_colour_edges():
    """Later stages rely on boundaries being visible: colour differs across the ignore band."""
    contrasts = []
    for index in range(10):
        image, label = render_image(TINY_SPEC, index)
        image = image.astype(float)
        inside = label > 0
        inside &= label != 255
        outside = label == 0
        if inside.any() and outside.any():
            contrasts.append(np.abs(image[inside].mean(0) - image[outside].mean(0)).sum())
    assert np.mean(contrasts) > 30


@pytest.mark.parametrize("bad", [dict(num_train=0), dict(num_train=100), dict(max_objects=9), dict(image_size=8)])
def test_bad_specs_are_refused(bad):
    with pytest.raises(ValueError):
        SyntheticSpec(**{**TINY_SPEC.__dict__, **bad})
