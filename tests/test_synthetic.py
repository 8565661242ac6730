import hashlib

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import ndimage

from helpers.workflow import REPO, TINY_SPEC, classic_overlay, shipped_config, tiny_spec
from mctformer.artifacts import voc_palette
from mctformer.data.synthetic import (
    ROLE_BACKGROUND,
    ROLE_BODY,
    ROLE_CONTEXT,
    ROLE_PART,
    ROLE_THIN,
    SyntheticSpec,
    body_appearance,
    class_appearance,
    generate_synthetic_voc,
    render_image,
    render_layers,
)
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


# ------------------------------------------------------------------------------------------ the parts world ---
# The knobs off, as config.yaml states them: today's world.
CLASSIC_KNOBS = dict(
    part_fraction=1.0, context_probability=0.0, context_alone_probability=0.0, instances_max=1, thin_probability=0.0,
)
# One object of one of 4 classes on 64 px, nothing else switched on: each test below turns on the knob it checks.
ONE_OBJECT = dict(image_size=64, min_objects=1, max_objects=1, shared_colours=False)


def parts_spec(**overrides) -> SyntheticSpec:
    return tiny_spec(**{**ONE_OBJECT, "part_fraction": 0.5, **overrides})


def classic_spec() -> SyntheticSpec:
    """config.yaml with workflow/configs/synthetic_classic.yaml: the embedded default's world before the parts world."""
    config = shipped_config()
    synthetic = {**config["synthetic"], **classic_overlay()["synthetic"]}
    synthetic["radius_range"] = tuple(synthetic["radius_range"])
    return SyntheticSpec(num_classes=len(config["data"]["classes"]), seed=config["seed"], **synthetic)


def render_digest(spec: SyntheticSpec, indices) -> str:
    digest = hashlib.sha256()
    for index in indices:
        image, label = render_image(spec, index)
        digest.update(image.tobytes())
        digest.update(label.tobytes())
    return digest.hexdigest()


# sha256 of render_image's (image, label) bytes, computed with the generator before the parts world existed
# (when config.yaml drew the classic world).
CLASSIC_DIGESTS = {
    ("classic", 0, 40): "0b9af82e184dd4857fd376c9ef5dfb908101b9e5fae20a47118179dac67fc525",
    ("classic", 6000, 6010): "87ea5c7b2393df2423be0801145cc7b6bb7402e14ff9f115d8395144c8759337",
    ("tiny", 0, 64): "870feb0773704adbf9d261cb143998f8584f8ec7742e776c3110285be7c11090",
}


@pytest.mark.parametrize("name, start, stop", list(CLASSIC_DIGESTS))
def test_the_classic_overlay_draws_the_old_world_byte_for_byte(name, start, stop):
    spec = classic_spec() if name == "classic" else TINY_SPEC
    assert spec.classic
    assert {key: getattr(spec, key) for key in CLASSIC_KNOBS} == CLASSIC_KNOBS
    assert render_digest(spec, range(start, stop)) == CLASSIC_DIGESTS[name, start, stop]


def test_the_classic_world_never_enters_the_parts_code(monkeypatch):
    import mctformer.data.synthetic as synthetic

    def refuse(*args, **kwargs):
        raise AssertionError("the classic world went through render_layers")

    monkeypatch.setattr(synthetic, "render_layers", refuse)
    synthetic.render_image(classic_spec(), 0)
    with pytest.raises(AssertionError):
        synthetic.render_image(parts_spec(), 0)
    with pytest.raises(ValueError, match="classic"):
        render_layers(TINY_SPEC, 0)


@pytest.mark.parametrize("knob, value", [
    ("part_fraction", 0.5), ("context_probability", 0.1), ("context_alone_probability", 0.1), ("instances_max", 2),
    ("thin_probability", 0.1),
])
def test_any_knob_on_leaves_the_classic_world(knob, value):
    assert not tiny_spec(**{knob: value}).classic


def test_parts_world_is_deterministic_per_seed_and_index():
    spec = tiny_spec(
        image_size=64, part_fraction=0.3, shared_colours=True, context_probability=0.7, context_alone_probability=0.5,
        instances_max=2, thin_probability=0.5,
    )
    image, label = render_image(spec, 5)
    again = render_image(spec, 5)
    assert np.array_equal(image, again[0]) and np.array_equal(label, again[1])
    assert not np.array_equal(render_image(tiny_spec(**{**spec.__dict__, "seed": spec.seed + 1}), 5)[0], image)
    assert not np.array_equal(render_image(spec, 6)[0], image)


def test_parts_world_files_do_not_depend_on_the_workers(tmp_path):
    spec = tiny_spec(part_fraction=0.3, context_probability=0.7, context_alone_probability=0.3, instances_max=2,
                     thin_probability=0.3, shared_colours=True, num_train_aug=14, num_train=4, num_val=6)
    generate_synthetic_voc(tmp_path / "one", spec, palette=None, workers=1)
    generate_synthetic_voc(tmp_path / "two", spec, palette=None, workers=2, chunk=7)
    files = sorted(p for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 2 * 20 + 3
    for path in files:
        assert (tmp_path / "two" / path.relative_to(tmp_path / "one")).read_bytes() == path.read_bytes(), path


def parts_labels_follow_voc_conventions(spec, count=20):
    for index in range(count):
        layers = render_layers(spec, index)
        label = layers.label
        values = set(np.unique(label).tolist())
        assert values <= {0, 255, *range(1, spec.num_classes + 1)}
        for value in values - {0, 255}:
            grown = ndimage.binary_dilation(label == value)  # a class pixel never touches background
            assert not (grown & (label == 0)).any()
        # the whole object (part, body, limbs) is its class; context and background are background
        for number, obj in enumerate(layers.objects, start=1):
            mine = layers.instance == number
            assert set(np.unique(label[mine]).tolist()) <= {obj["class_index"] + 1, 255}
        assert set(np.unique(label[np.isin(layers.role, [ROLE_BACKGROUND, ROLE_CONTEXT])]).tolist()) <= {0, 255}


def test_parts_labels_follow_voc_conventions():
    parts_labels_follow_voc_conventions(tiny_spec(
        image_size=64, part_fraction=0.3, shared_colours=True, context_probability=0.7, context_alone_probability=0.5,
        instances_max=2, thin_probability=0.5,
    ))


def distance_to_colour_rays(pixels: np.ndarray, colours) -> np.ndarray:
    """Per pixel, the distance to the nearest ray {s * c}: a colour times a brightness jitter, plus noise."""
    distances = []
    for colour in colours:
        colour = np.asarray(colour, dtype=float)
        along = pixels @ colour / (colour @ colour)
        distances.append(np.linalg.norm(pixels - along[:, None] * colour, axis=1))
    return np.min(distances, axis=0)


@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_part_fraction_is_the_class_specific_share_of_the_object(fraction):
    spec = parts_spec(part_fraction=fraction, body_pool=3, bodies_per_class=3)
    shares = []
    for index in range(12):
        layers = render_layers(spec, index)
        (obj,) = layers.objects
        part, body = layers.role == ROLE_PART, layers.role == ROLE_BODY
        shares.append(part.sum() / (part | body).sum())
        assert ndimage.label(part)[1] == 1 and (ndimage.binary_dilation(part) & body).any()  # one part, on its body
        pixels = layers.image.astype(float)
        # the part wears its class's colours, the body one of the shared pool's
        look = class_appearance(obj["class_index"], spec.num_classes)
        assert np.median(distance_to_colour_rays(pixels[part], look["colours"])) < 12
        assert np.median(distance_to_colour_rays(pixels[body], body_appearance(obj["body"])["colours"])) < 12
    assert abs(np.mean(shares) - fraction) < 0.04
    assert max(abs(np.array(shares) - fraction)) < 0.15


def test_part_fraction_one_is_the_whole_object_without_body():
    layers = render_layers(parts_spec(part_fraction=1.0, context_probability=1.0), 0)
    assert (layers.role == ROLE_PART).any() and not (layers.role == ROLE_BODY).any()
    assert layers.objects[0]["body"] is None


def test_bodies_come_from_one_pool_whatever_the_class():
    spec = parts_spec(body_pool=3, bodies_per_class=3)
    counts = np.zeros((spec.num_classes, 3), dtype=int)
    for index in range(200):
        (obj,) = render_layers(spec, index).objects
        counts[obj["class_index"], obj["body"]] += 1
    assert (counts > 0).all()  # every class wears every body
    rates = counts / counts.sum(1, keepdims=True)
    assert np.abs(rates - 1 / 3).max() < 0.2


def test_bodies_per_class_ties_each_body_to_its_classes():
    # 4 classes, a pool of 4, 2 per class: class c wears entries c and c+1 (mod 4), so each body serves two classes
    spec = parts_spec(body_pool=4, bodies_per_class=2)
    counts = np.zeros((spec.num_classes, 4), dtype=int)
    for index in range(200):
        (obj,) = render_layers(spec, index).objects
        counts[obj["class_index"], obj["body"]] += 1
    allowed = np.zeros_like(counts, dtype=bool)
    for class_index in range(spec.num_classes):
        allowed[class_index, [class_index % 4, (class_index + 1) % 4]] = True
    assert (counts[~allowed] == 0).all() and (counts[allowed] > 0).all()
    assert ((counts > 0).sum(axis=0) == 2).all()  # every body is worn by exactly two classes


@pytest.mark.parametrize("texture", ["pool", "solid"])
def test_body_texture_solid_paints_one_colour_per_body(texture):
    # pool entries 0-3 have textures (stripes, checker, dots, waves): two colours on a body; solid: one
    spec = parts_spec(body_pool=4, bodies_per_class=4, body_texture=texture)
    spreads = []
    for index in range(20):
        layers = render_layers(spec, index)
        body = ndimage.binary_erosion(layers.role == ROLE_BODY, iterations=1)
        if body.sum() > 30:
            spreads.append(np.percentile(layers.image[body].astype(float), 90, axis=0).max()
                           - np.percentile(layers.image[body].astype(float), 10, axis=0).max())
    assert len(spreads) >= 10
    if texture == "solid":
        assert np.median(spreads) < 25  # the pixel noise (sd 6) and JPEG-free rendering: one colour
    else:
        assert np.median(spreads) > 40


@pytest.mark.parametrize("on_body", [False, True])
def test_part_on_body_colour_draws_the_pattern_on_the_body_colour(on_body):
    spec = parts_spec(body_pool=4, bodies_per_class=4, body_texture="solid", part_on_body_colour=on_body)
    shares = []
    for index in range(40):
        layers = render_layers(spec, index)
        (obj,) = layers.objects
        if class_appearance(obj["class_index"], spec.num_classes)["texture"] == 0:
            continue  # a solid part has no second colour
        part, body = layers.role == ROLE_PART, ndimage.binary_erosion(layers.role == ROLE_BODY)
        if not body.any():
            continue
        pixels = layers.image.astype(float)
        body_colour = np.median(pixels[body], axis=0)
        near_body = np.linalg.norm(pixels[part] - body_colour, axis=1) < 25
        shares.append(near_body.mean())
    assert len(shares) >= 15
    if on_body:
        assert np.median(shares) > 0.15  # the pattern's second colour is the body's (dots: a small share)
    else:
        assert np.median(shares) < 0.05


@pytest.mark.parametrize("shared", [False, True])
def test_context_lies_next_to_its_object_and_is_background(shared):
    spec = parts_spec(context_probability=1.0, shared_colours=shared)
    for index in range(10):
        layers = render_layers(spec, index)
        context = layers.role == ROLE_CONTEXT
        obj = layers.instance > 0
        assert layers.objects[0]["context"] and context.sum() > 20
        assert (ndimage.binary_dilation(obj) & context).any()  # adjacent to the object
        assert set(np.unique(layers.label[context]).tolist()) <= {0, 255}
        band = ndimage.binary_dilation(obj, structure=np.ones((3, 3)))
        assert (layers.label[context & ~band] == 0).all()  # background, but for the object's ignore band
    without = parts_spec(context_probability=0.0)
    assert not any((render_layers(without, i).role == ROLE_CONTEXT).any() for i in range(10))


def test_context_probability_is_the_share_of_objects_with_context():
    spec = parts_spec(context_probability=0.4)
    share = np.mean([render_layers(spec, i).objects[0]["context"] for i in range(200)])
    assert 0.3 < share < 0.5


def test_a_context_appears_without_its_class():
    spec = parts_spec(context_alone_probability=1.0)
    for index in range(10):
        layers = render_layers(spec, index)
        present = {obj["class_index"] for obj in layers.objects}
        assert layers.stray_context is not None and layers.stray_context not in present
        assert not (layers.label == layers.stray_context + 1).any()  # its class is nowhere in the image
        assert (layers.role == ROLE_CONTEXT).sum() > 20  # yet its context is
    # every class present: no absent class to lend a context
    full = tiny_spec(**{**ONE_OBJECT, "num_classes": 1, "part_fraction": 0.5, "context_alone_probability": 1.0})
    assert render_layers(full, 0).stray_context is None and not (render_layers(full, 0).role == ROLE_CONTEXT).any()


def test_no_colour_identifies_a_class_with_shared_colours():
    """A colour-only pixel classifier (8^3 RGB bins, fit on 100 images, scored on 100 others) does no better than
    chance on body and context pixels with shared colours, and does well without them or in the classic world."""

    def pixels(spec, indices, role):
        colours, classes = [], []
        for index in indices:
            if spec.classic:
                image, label = render_image(spec, index)
                keep = (label > 0) & (label < 255)
                colours.append(image[keep]), classes.append(label[keep] - 1)
                continue
            layers = render_layers(spec, index)
            keep = layers.role == role
            colours.append(layers.image[keep]), classes.append(np.full(keep.sum(), layers.objects[0]["class_index"]))
        return np.concatenate(colours).astype(int), np.concatenate(classes).astype(int)

    def balanced_accuracy(spec, role=None):
        (fit, fit_classes), (score, score_classes) = pixels(spec, range(100), role), pixels(spec, range(100, 200), role)
        bins = lambda c: (c[:, 0] // 32 * 8 + c[:, 1] // 32) * 8 + c[:, 2] // 32  # noqa: E731
        counts = np.zeros((512, fit_classes.max() + 1))
        np.add.at(counts, (bins(fit), fit_classes), 1)
        predicted = (counts / counts.sum(0)).argmax(1)[bins(score)]  # equal priors: balanced
        return np.mean([(predicted[score_classes == c] == c).mean() for c in np.unique(score_classes)])

    chance = 1 / 4
    assert balanced_accuracy(tiny_spec(**{**ONE_OBJECT, **CLASSIC_KNOBS})) > 0.95
    shared = parts_spec(part_fraction=0.3, body_pool=4, shared_colours=True, context_probability=1.0)
    vivid = parts_spec(part_fraction=0.3, body_pool=4, shared_colours=False, context_probability=1.0)
    assert balanced_accuracy(shared, ROLE_BODY) < chance + 0.06
    assert balanced_accuracy(shared, ROLE_CONTEXT) < chance + 0.06
    assert balanced_accuracy(vivid, ROLE_CONTEXT) > 0.8  # without shared colours a context's colour gives its class


def test_shared_colours_blur_object_and_background():
    """Body vs background (and context) by colour alone: near chance with shared colours, easy without."""

    def accuracy(spec):
        def pixels(indices):
            colours, is_body = [], []
            for index in indices:
                layers = render_layers(spec, index)
                keep = (layers.label < 255) & np.isin(layers.role, [ROLE_BODY, ROLE_BACKGROUND, ROLE_CONTEXT])
                colours.append(layers.image[keep]), is_body.append(layers.role[keep] == ROLE_BODY)
            return np.concatenate(colours).astype(int), np.concatenate(is_body).astype(int)

        (fit, fit_y), (score, score_y) = pixels(range(60)), pixels(range(60, 120))
        bins = lambda c: (c[:, 0] // 32 * 8 + c[:, 1] // 32) * 8 + c[:, 2] // 32  # noqa: E731
        counts = np.zeros((512, 2))
        np.add.at(counts, (bins(fit), fit_y), 1)
        predicted = (counts / counts.sum(0)).argmax(1)[bins(score)]
        return np.mean([(predicted[score_y == c] == c).mean() for c in (0, 1)])

    knobs = dict(part_fraction=0.3, body_pool=4, context_probability=0.7, min_objects=1, max_objects=3)
    assert accuracy(tiny_spec(**{**ONE_OBJECT, **knobs, "shared_colours": True})) < 0.7
    assert accuracy(tiny_spec(**{**ONE_OBJECT, **knobs, "shared_colours": False})) > 0.8


def test_instances_max_places_several_objects_of_a_class():
    spec = parts_spec(instances_max=3)
    counts = []
    for index in range(30):
        layers = render_layers(spec, index)
        assert len({obj["class_index"] for obj in layers.objects}) == 1
        counts.append(len(layers.objects))
    assert set(counts) <= {1, 2, 3} and max(counts) == 3 and np.mean(counts) > 1.5
    assert all(len(render_layers(parts_spec(instances_max=1), i).objects) == 1 for i in range(10))


def test_thin_limbs_are_thin_and_belong_to_the_object():
    spec = parts_spec(thin_probability=1.0)
    thin_pixels = labelled = 0
    depths = []
    for index in range(20):
        layers = render_layers(spec, index)
        assert all(obj["limbs"] for obj in layers.objects)
        thin = layers.role == ROLE_THIN
        thin_pixels += thin.sum()
        labelled += (layers.label[thin] == layers.objects[0]["class_index"] + 1).sum()
        assert set(np.unique(layers.label[thin]).tolist()) <= {layers.objects[0]["class_index"] + 1, 255}
        depths.append(ndimage.distance_transform_edt(thin)[thin])  # how far inside the limb a pixel lies
    assert thin_pixels > 20 * 40 and labelled > 0.2 * thin_pixels
    assert np.percentile(np.concatenate(depths), 95) <= 2.5  # 3-4 px wide: hardly a pixel deeper than 2
    assert not any((render_layers(parts_spec(thin_probability=0.0), i).role == ROLE_THIN).any() for i in range(10))


@pytest.mark.parametrize("bad", [
    dict(part_fraction=0.0), dict(part_fraction=1.5), dict(body_pool=0), dict(context_probability=-0.1),
    dict(bodies_per_class=0), dict(body_pool=2, bodies_per_class=3), dict(body_texture="marble"),
    dict(context_alone_probability=1.5), dict(instances_max=0), dict(thin_probability=2.0),
])
def test_bad_parts_knobs_are_refused(bad):
    with pytest.raises(ValueError):
        tiny_spec(**bad)


def test_the_parts_overlay_selects_the_parts_world():
    from snakemake.utils import validate

    overlay = yaml.safe_load((REPO / "workflow" / "configs" / "synthetic_parts.yaml").read_text())
    config = shipped_config()
    config["run_name"] = overlay["run_name"]
    config["synthetic"].update(overlay["synthetic"])
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    synthetic = {**config["synthetic"], "radius_range": tuple(config["synthetic"]["radius_range"])}
    spec = SyntheticSpec(num_classes=len(config["data"]["classes"]), seed=config["seed"], **synthetic)
    assert config["run_name"] == "synthetic_parts" and not spec.classic and spec.shared_colours


def test_the_default_world_has_every_phenomenon():
    """config.yaml draws the parts world: parts on bodies that serve two classes each, contexts with and without
    their class, several instances, thin limbs, colours of the background's law."""
    config = shipped_config()
    synthetic = {**config["synthetic"], "radius_range": tuple(config["synthetic"]["radius_range"])}
    spec = SyntheticSpec(num_classes=len(config["data"]["classes"]), seed=config["seed"], **synthetic)
    assert not spec.classic and spec.shared_colours and spec.bodies_per_class < spec.body_pool
    roles, strays, instances, bodies = set(), 0, 0, {}
    for index in range(40):
        layers = render_layers(spec, index)
        roles |= set(np.unique(layers.role).tolist())
        strays += layers.stray_context is not None
        classes = [obj["class_index"] for obj in layers.objects]
        instances += len(classes) > len(set(classes))
        for obj in layers.objects:
            bodies.setdefault(obj["body"], set()).add(obj["class_index"])
    assert roles == {ROLE_BACKGROUND, ROLE_CONTEXT, ROLE_BODY, ROLE_PART, ROLE_THIN}
    assert strays > 0 and instances > 0
    assert all(len(classes) <= spec.bodies_per_class for classes in bodies.values())
