"""The config keys that travel together, as small frozen dataclasses: built once, from the keys a rule passes
(each ``take`` picks its fields out of the rule's config keys and returns the rest), where a stage begins.

No torch here: the rule scripts import these before their stage decides whether it needs torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MapGeometry:
    """How the maps follow the image size: the config's maps.resize, maps.remainder, maps.position_embedding and
    maps.amp (see mctformer.localize.multiscale_maps)."""

    resize: str
    remainder: str
    position_embedding: str
    amp: bool

    @classmethod
    def take(cls, keys: Mapping[str, Any]) -> tuple[MapGeometry, dict[str, Any]]:
        """The geometry a rule's config keys (``resize``, ``remainder``, ``position_embedding``, ``amp``) give, and the other keys."""
        rest = dict(keys)
        return cls(rest.pop("resize"), rest.pop("remainder"), rest.pop("position_embedding"), rest.pop("amp")), rest


@dataclass(frozen=True)
class WalkSettings:
    """PSA's random walk: affinity^``beta``, 2^``logt`` steps, pairs within ``radius`` grid cells drawn as ``pair_sources``
    says (psa.beta, psa.logt and the affinity.radius, affinity.pair_sources the walk shares with training)."""

    beta: float
    logt: int
    radius: int
    pair_sources: str

    @classmethod
    def take(cls, keys: Mapping[str, Any]) -> tuple[WalkSettings, dict[str, Any]]:
        """The settings a rule's config keys (``beta``, ``logt``, ``radius``, ``pair_sources``) give, and the other keys."""
        rest = dict(keys)
        return cls(rest.pop("beta"), rest.pop("logt"), rest.pop("radius"), rest.pop("pair_sources")), rest
