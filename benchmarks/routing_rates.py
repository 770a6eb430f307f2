"""How `pretrained:auto` routes: the share of images the damage detector sends to each bundled model.

Per named distortion on the evaluation sets (any seed, so damage it was not tuned on can be drawn), on
undamaged folders as they are, and on the embedded samples, clear and damaged: the detector's decisions
alone, without restoring, so a threshold can be checked on many images in seconds.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from benchmarks.model_scores import ScoreOptions, columns
from benchmarks.quality_data import prepare_data
from benchmarks.quality_eval import load_case
from vae_restore.data.decode import decode_rgb
from vae_restore.data.embedded import embedded_images
from vae_restore.data.listing import list_images
from vae_restore.distortions.named import apply_named
from vae_restore.inference import Restorer


def decisions(restorer: Restorer, images: list[np.ndarray]) -> Counter:
    """How many of `images` (H×W×3, uint8 or float in [0, 1]) the router sends to each model."""
    scale = {np.dtype(np.uint8): 255.0}
    return Counter(restorer.router.choose(np.asarray(x, np.float32) / scale.get(x.dtype, 1.0)) for x in images)


def embedded_damaged(distortion: str | None, seed: int) -> list[np.ndarray]:
    """The embedded samples as float images, with `distortion` applied (None: clear)."""
    images = []
    for _, image in embedded_images():
        planes = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        if distortion:
            planes = apply_named(distortion, planes, seed)
        images.append(planes[0].permute(1, 2, 0).numpy())
    return images


def routing_rows(options: ScoreOptions, undamaged: dict[str, Path]) -> list[tuple[str, int, Counter]]:
    """(what, images, decisions) per evaluation column, per undamaged folder and for the embedded samples."""
    restorer = Restorer("pretrained:auto", providers="cpu")
    data = prepare_data(options.work, options.train_data, options.val_data, options.art)
    rows = []
    for column in columns(options, list(data.eval_sets)):
        case = load_case(column, data.eval_sets[column.dataset], options.num_images, options.seed)
        rows.append((f"{column.label} (seed {options.seed})", len(case.inputs), decisions(restorer, case.inputs)))
    for name, folder in undamaged.items():
        images = [decode_rgb(path) for path in list_images(folder)]
        rows.append((f"{name}, undamaged", len(images), decisions(restorer, images)))
    for distortion in (None, *options.distortions):
        images = embedded_damaged(distortion, options.seed)
        rows.append((f"embedded samples: {distortion or 'clear'}", len(images), decisions(restorer, images)))
    return rows


def markdown(rows: list[tuple[str, int, Counter]], models: list[str]) -> str:
    lines = ["| images | count | " + " | ".join(models) + " |", "|---|---:|" + "---:|" * len(models)]
    lines += [f"| {what} | {n} | " + " | ".join(str(c[m]) for m in models) + " |" for what, n, c in rows]
    return "\n".join(lines)
