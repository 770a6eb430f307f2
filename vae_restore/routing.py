"""Blind routing between the bundled models: a damage detector looks at each image and a rule picks the model.

`pretrained/router/router.json` holds the rule, for example "aging above 0.8 -> aged, otherwise general",
beside the detector's graph `detector.onnx` (+ manifest). A rule may also route on a measure computed here
rather than learned: `jpeg_blocking`, the classic no-reference blockiness of JPEG's 8×8 grid. The detector
and the measures see at most a `max_side`×`max_side` centre crop, so their cost stays bounded on large
photos. Imports no torch.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CheckpointError
from .export.manifest import read_manifest, verify_model_file

RULE_FILE = "router.json"
MIN_SIDE = 8  # the detector works down to 1/8 scale


@dataclass(frozen=True)
class Route:
    group: str  # a damage group the detector scores ("aging"), or a measure of MEASURES ("jpeg_blocking")
    above: float  # the probability (or measure) above which an image takes this route
    model: str  # the bundled model that restores it


@dataclass(frozen=True)
class RoutingRule:
    """The first route whose group scores above its threshold wins; otherwise `otherwise`."""

    detector: Path
    routes: tuple[Route, ...]
    otherwise: str
    max_side: int

    @classmethod
    def load(cls, folder: Path) -> RoutingRule:
        """Read `folder/router.json`. Raises CheckpointError for a missing or malformed rule."""
        path = folder / RULE_FILE
        try:
            raw = json.loads(path.read_text())
            routes = tuple(Route(r["group"], float(r["above"]), r["model"]) for r in raw["routes"])
            return cls(folder / raw["detector"], routes, raw["otherwise"], int(raw["max_side"]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: not a readable routing rule ({type(e).__name__}: {e})") from None

    def to_dict(self) -> dict:
        return {
            "detector": self.detector.name,
            "routes": [{"group": r.group, "above": r.above, "model": r.model} for r in self.routes],
            "otherwise": self.otherwise,
            "max_side": self.max_side,
        }

    def describe(self) -> str:
        """One line for users: `aged where aging > 0.8; otherwise general`."""
        routes = "; ".join(f"{r.model} where {r.group} > {r.above:g}" for r in self.routes)
        return f"{routes}; otherwise {self.otherwise}"

    def models(self) -> list[str]:
        return list(dict.fromkeys([self.otherwise, *(r.model for r in self.routes)]))


def centre_crop(pixels: np.ndarray, max_side: int) -> np.ndarray:
    """At most `max_side`×`max_side` from the middle of an H×W×3 image."""
    height, width = pixels.shape[:2]
    top, left = max(0, (height - max_side) // 2), max(0, (width - max_side) // 2)
    return pixels[top : top + max_side, left : left + max_side]


def jpeg_blocking(pixels: np.ndarray) -> float:
    """How much more luma steps across one of the 8 pixel phases than across the other 7, both axes averaged.

    JPEG codes 8×8 blocks independently, so at low quality the steps between blocks stand out: about 1.0-1.3
    on images never saved as JPEG (or saved at high quality), 1.4-3.9 at quality 20 and below. The grid's
    phase is found, not assumed, so a crop that moved it is measured the same.
    """
    luma = pixels[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    ratios = []
    for axis in (0, 1):
        steps = np.abs(np.diff(luma, axis=axis)).mean(axis=1 - axis)
        whole = len(steps) // 8 * 8
        if whole < 16:  # fewer than two blocks: nothing to compare
            return 1.0
        by_phase = steps[:whole].reshape(-1, 8).mean(0)
        strongest = int(by_phase.argmax())
        ratios.append(by_phase[strongest] / (np.delete(by_phase, strongest).mean() + 1e-6))
    return float(np.mean(ratios))


MEASURES = {"jpeg_blocking": jpeg_blocking}  # routing groups computed from the pixels, beside the detector's


class Router:
    """The detector's onnxruntime session and the rule: `choose(pixels)` names the model for one image.

    Raises:
        CheckpointError: the rule or the detector is missing, or the detector does not match its manifest
            or lacks a group the rule needs.
        InferenceError: onnxruntime cannot load the detector.
    """

    def __init__(self, rule: RoutingRule, providers: str | Sequence[str], threads: int | None, verify: bool = True):
        from .inference import open_session

        self.rule = rule
        manifest = verify_model_file(rule.detector) if verify else read_manifest(rule.detector)
        self.groups = list(manifest.get("groups", []))
        missing = sorted({r.group for r in rule.routes} - set(self.groups) - set(MEASURES))
        if missing:
            raise CheckpointError(
                f"{rule.detector} scores {self.groups} and the router measures {list(MEASURES)}, "
                f"not {missing} which its rule routes on"
            )
        self.session = open_session(rule.detector, providers, threads)

    def _probabilities(self, crop: np.ndarray) -> dict[str, float]:
        """Each damage group's probability for an H×W×3 float32 crop in [0, 1]."""
        if min(crop.shape[:2]) < MIN_SIDE:  # too small to judge: no damage seen, the `otherwise` model
            return dict.fromkeys(self.groups, 0.0)
        batch = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32)
        return dict(zip(self.groups, self.session.run(None, {"image": batch})[0][0].tolist(), strict=True))

    def scores(self, pixels: np.ndarray) -> dict[str, float]:
        """The detector's probabilities and the measures the rule uses, for an H×W×3 float32 image in [0, 1]."""
        crop = centre_crop(pixels, self.rule.max_side)
        wanted = {r.group for r in self.rule.routes} & set(MEASURES)
        return {**self._probabilities(crop), **{name: MEASURES[name](crop) for name in sorted(wanted)}}

    def choose(self, pixels: np.ndarray) -> str:
        found = self.scores(pixels)
        return next((r.model for r in self.rule.routes if found[r.group] > r.above), self.rule.otherwise)
