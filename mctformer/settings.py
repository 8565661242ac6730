"""The config keys that travel together, as small frozen dataclasses: built once, from the keys a rule passes
(each ``take`` picks its fields out of the rule's config keys and returns the rest), where a stage begins.

No torch here: the rule scripts import these before their stage decides whether it needs torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Self


class TakesItsKeys:
    """``take``: a frozen dataclass of the config keys named like its fields, picked out of a rule's keys."""

    @classmethod
    def take(cls, keys: Mapping[str, Any]) -> tuple[Self, dict[str, Any]]:
        """The instance the rule's config keys give (one per field, by name), and the keys left over."""
        rest = dict(keys)
        return cls(**{field.name: rest.pop(field.name) for field in fields(cls)}), rest


@dataclass(frozen=True)
class MapGeometry(TakesItsKeys):
    """How the maps follow the image size: the config's maps.resize, maps.remainder, maps.position_embedding and
    maps.amp (see mctformer.localize.multiscale_maps)."""

    resize: str
    remainder: str
    position_embedding: str
    amp: bool


@dataclass(frozen=True)
class WalkSettings(TakesItsKeys):
    """PSA's random walk: affinity^``beta``, 2^``logt`` steps, pairs within ``radius`` grid cells drawn as ``pair_sources``
    says (psa.beta, psa.logt and the affinity.radius, affinity.pair_sources the walk shares with training)."""

    beta: float
    logt: int
    radius: int
    pair_sources: str


@dataclass(frozen=True)
class Placement(TakesItsKeys):
    """Where a stage's network runs: the config's device (auto | cpu | cuda) and deterministic, and the GPUs the rule's
    job asks for (resources.rules.<rule>.gpus), so that a GPU job that sees no GPU is refused (training.common.torch_setup)."""

    device: str
    deterministic: bool
    gpus: int


def training_precision(section: Mapping[str, Any]) -> str | None:
    """The dtype a trainer's section autocasts to: its amp_dtype when amp is on, None (float32) when it is off."""
    return section["amp_dtype"] if section["amp"] else None
