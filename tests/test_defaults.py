"""config.yaml is the one place a default lives: no core function gives a config-set parameter a Python default.

Each pair below is a parameter of the core package that a config key sets (directly, or through
the mctformer/stages/ modules, which pass config keys by name). A Python default there would be a second,
silently drifting copy of the config's value, or a value the pipeline never uses; every caller
(the stages, the tests, the benchmarks) passes it instead. Parameters that no config key sets keep
their defaults (e.g. ``atomic``, ``eps``, ``chunk``, ``return_attention``, ``overlay_dir``).
"""

from __future__ import annotations

import inspect

import pytest

from mctformer import affinity, artifacts, crf, localize, metrics, replicates, segmentation
from mctformer.data import datasets, labels, prepare, synthetic, transforms
from mctformer.irn import drivers as irn_drivers
from mctformer.irn import labels as irn_labels
from mctformer.irn import paths as irn_paths
from mctformer.irn import walk as irn_walk
from mctformer.models import affinitynet, backbones, deeplab, mctformer
from mctformer.models import irn as irn_model
from mctformer.psa import drivers, geometry
from mctformer.training import affinity as train_affinity
from mctformer.training import classifier as train_classifier
from mctformer.training import deeplab as train_deeplab
from mctformer.training import irn as train_irn

# (callable, its config-set parameters): the key that sets each is in the comment.
CONFIG_SET = [
    # maps.*
    (localize.multiscale_maps, ["scales", "flip", "last_k", "feature_temperature", "resize", "remainder", "position_embedding", "amp"]),
    (localize.multiscale_layer_maps, ["scales", "flip", "resize", "remainder", "position_embedding", "amp"]),
    (localize.extract_maps, ["scales", "flip", "last_k", "feature_temperature", "batch_size", "device", "num_overlays", "resize",
                             "remainder", "position_embedding", "amp", "storage_dtype"]),
    (artifacts.save_map_file, ["dtype"]),  # maps.storage_dtype
    (mctformer.MCTformer.forward_tokens, ["position_resampling"]),  # maps.position_embedding
    (mctformer.MCTformer._pos_embed, ["resampling"]),
    (mctformer.resample_position_embedding, ["method"]),
    # classifier.*
    (mctformer.create_mctformer, ["version", "token_pooling", "drop_path_rate", "pretrained", "patchcam_init", "locality_sigma"]),
    (mctformer.MCTformer.__init__, ["version", "token_pooling", "patchcam_init", "locality_sigma"]),
    (train_classifier.train_classifier, ["device", "seed", "workers"]),  # device, seed, classifier.workers
    (train_classifier.load_classifier, ["device"]),
    # seeds.*
    (metrics.best_threshold, ["convention", "selection"]),  # seeds.miou_convention, seeds.selection
    # psa.crf / deeplab.crf
    (crf.CRFParams, ["iterations", "gaussian_sxy", "gaussian_compat", "bilateral_sxy", "bilateral_srgb", "bilateral_compat"]),
    (crf.spatial_scale, ["setting", "reference_size"]),
    (crf.crf_argmax, ["scale_setting", "reference_size", "normalise"]),  # crf.spatial_scale, crf.reference_size, deeplab.crf.normalise_scores
    # psa.* and affinity.* of the walk
    (drivers.random_walk_masks, ["background", "beta", "logt", "radius", "palette", "device", "batch_size", "scale", "pair_sources"]),
    (drivers.colour_walk_predictions, ["background", "beta", "logt", "radius", "stride", "sigma", "scale", "pair_sources"]),
    (geometry.walk_geometry, ["scale"]),  # psa.walk_scale
    (affinity.pair_indices.__wrapped__, ["sources"]),  # affinity.pair_sources (lru_cache'd: the function itself)
    (affinity.pair_labels, ["sources"]),
    (affinity.neighbour_affinity, ["sources"]),
    # affinity.*
    (affinitynet.AffinityNet.__init__, ["backbone", "pretrained", "feature_dim"]),
    (train_affinity.train_affinity, ["device", "seed", "workers"]),
    (train_affinity.load_affinity_net, ["device"]),
    (datasets.SegmentationCropDataset.__init__, ["scale_range", "flip", "color_jitter", "pad_image", "pad_label", "placement",
                                                "in_memory"]),
    (transforms.random_scale_flip_crop, ["scale_range", "flip", "ignore", "color_jitter", "pad_image", "placement"]),
    # deeplab.*
    (deeplab.DeepLab.__init__, ["backbone", "pretrained", "head", "aspp_dilations", "head_channels", "dilation", "dropout",
                                "classifier_kernel", "head_init"]),
    (deeplab.ASPPClassifier.__init__, ["dilations"]),  # deeplab.aspp_dilations
    (backbones.create_backbone, ["pretrained"]),  # affinity.pretrained / deeplab.pretrained
    (backbones.ResNet38d.__init__, ["pretrained"]),
    (backbones.TimmBackbone.__init__, ["pretrained"]),
    (train_deeplab.train_deeplab, ["device", "seed", "workers"]),
    (train_deeplab.load_deeplab, ["device"]),
    # irn.*
    (irn_labels.ir_labels, ["conf_fg_thres", "conf_bg_thres", "crf_params", "gt_prob"]),
    (irn_labels.check_thresholds, ["conf_fg_thres", "conf_bg_thres"]),
    (irn_labels.label_crf, ["params", "gt_prob"]),  # irn.crf
    (irn_paths.boundary_affinity, ["radius", "sources"]),  # irn.train_radius / walk_radius, irn.pair_sources
    (irn_walk.boundary_walk, ["beta", "exp_times", "radius"]),
    (irn_walk.walked_to_masks, ["bg_threshold"]),  # irn.sem_seg_bg_thres
    (irn_drivers.make_ir_labels, ["conf_fg_thres", "conf_bg_thres", "params", "scale_setting", "reference_size", "gt_prob", "palette",
                                  "workers"]),
    (irn_drivers.irn_walk_masks, ["beta", "exp_times", "radius", "bg_threshold", "scale", "batch_size", "palette", "device"]),
    (irn_model.BoundaryNet.__init__, ["backbone", "pretrained", "edge_channels", "freeze_backbone"]),
    (irn_model.create_boundary_backbone, ["pretrained"]),
    (train_irn.train_boundary_net, ["device", "seed", "workers"]),
    (train_irn.load_boundary_net, ["device"]),
    (segmentation.multiscale_softmax, ["scales", "flip", "fuse", "resize"]),  # deeplab.scales, flip_inference, fuse, inference_resize
    (segmentation.segment_images, ["scales", "flip", "fuse", "crf_params", "scale_setting", "reference_size", "palette", "device",
                                   "workers", "resize", "normalise_crf_scores"]),
    # synthetic.*, seed, data.palette, the rules' threads
    (synthetic.SyntheticSpec, ["image_size", "min_objects", "max_objects", "radius_range", "part_fraction", "body_pool",
                               "bodies_per_class", "body_texture", "part_on_body_colour", "shared_colours", "context_probability",
                               "context_alone_probability", "instances_max", "thin_probability", "seed"]),
    (synthetic.generate_synthetic_voc, ["palette", "workers"]),
    (labels.build_class_labels, ["workers"]),
    # seed, replicates: the replicates' seeds seed, seed + 1, ...
    (replicates.aggregate_summaries, ["seeds"]),
    (prepare.prepare_coco14, ["workers"]),
]

PAIRS = [(function, name) for function, names in CONFIG_SET for name in names]


@pytest.mark.parametrize("function, name", PAIRS, ids=[f"{function.__qualname__}.{name}" for function, name in PAIRS])
def test_config_set_parameter_has_no_python_default(function, name):
    parameters = inspect.signature(function).parameters
    assert name in parameters, f"{function.__module__}.{function.__qualname__} has no parameter {name!r} (renamed? update this list)"
    default = parameters[name].default
    assert default is inspect.Parameter.empty, (
        f"{function.__module__}.{function.__qualname__}({name}=...) has the Python default {default!r}: "
        "config.yaml is the only place a default lives; pass the config's value instead"
    )


def test_builders_read_every_key_from_the_settings():
    """build_classifier / build_deeplab take the whole config section: a key it lacks is an error, not a fallback."""
    from conftest import tiny_config

    for build, section, extra in ((train_classifier.build_classifier, "classifier", 4), (train_deeplab.build_deeplab, "deeplab", 5)):
        settings = tiny_config()[section]
        for key in ("pretrained", "patchcam_init") if section == "classifier" else ("pretrained", "classifier_kernel", "head_init"):
            with pytest.raises(KeyError, match=key):
                build({k: v for k, v in settings.items() if k != key}, extra)
