"""Model cards: README.md with YAML front matter as on the Hugging Face Hub, for every run folder and bundled model.

One template, filled from what a run records: its resolved config (config.json), its lineage (parent weights
and their sha256), its last validation, and, for a published model, its evaluation table and commands.
Pure Python (no torch, no yaml): the inference install reads bundled cards too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

CARD_NAME = "README.md"
LICENSE = "mit"  # the toolkit's; a published model adds its training data's terms
DISTORTION_PREFIX = "p_"


@dataclass
class CardContent:
    """What a card says beyond the run's own records (all optional for a run folder's card)."""

    title: str
    summary: str
    datasets: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # the exact commands that trained / evaluated it
    evaluation: str = ""  # a markdown table
    limitations: list[str] = field(default_factory=list)
    data_terms: str = ""


def _front_matter(content: CardContent, config: dict, run: dict) -> str:
    lines = [
        "---",
        f"license: {LICENSE}",
        "library_name: vae-restore",
        "pipeline_tag: image-to-image",
        "tags: [image-restoration, denoising, vae, onnx, safetensors]",
    ]
    if content.datasets:
        lines.append("datasets: [" + ", ".join(content.datasets) + "]")
    lines.append("metrics: [psnr, ssim]")
    if run.get("lineage", {}).get("parent"):
        lines.append(f"base_model_sha256: {run['lineage']['parent_sha256']}")
    lines.append(f"preset: {config['model']['preset']}")
    return "\n".join([*lines, "---", ""])


def _distortions(config: dict) -> str:
    chances = {k[len(DISTORTION_PREFIX) :]: v for k, v in config.get("distortions", {}).items() if k.startswith("p_")}
    used = [f"{name} {chance:g}" for name, chance in chances.items() if chance > 0]
    return ", ".join(used) if used else "none"


def _training_table(config: dict, run: dict) -> str:
    t, d, lo, o = config["train"], config["data"], config["loss"], config["optim"]
    rows = [
        ("preset", config["model"]["preset"]),
        ("stage", t["stage"]),
        (
            "steps",
            f"{run.get('global_step', t['max_train_steps'])} of batch {t['train_batch_size']}, crops {d['crop_size']}²",
        ),
        ("data", d["train_data"] or "the embedded scikit-image samples"),
        ("loss", f"{lo['reconstruction']} + {lo['kl_weight']:g}·KL ({lo.get('loss_reduction', 'sum')} per image)"),
        (
            "optimiser",
            f"{o['optimizer']} lr {o['learning_rate']:g}, {o['lr_scheduler']}, warm-up {o['lr_warmup_steps']}",
        ),
        ("EMA", f"{o['ema_decay']:g}" if o["ema_decay"] else "off"),
        ("precision", run.get("mixed_precision", t.get("mixed_precision")) or "fp32"),
        ("processes", run.get("num_processes", 1)),
    ]
    if t["stage"] == "distorted":
        rows.append(("distortions", f"{_distortions(config)}; Gaussian σ {d['noise_sigma']} (1/255)"))
    return "\n".join(["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def _lineage(run: dict, bundled_weights: tuple[str, str] | None = None) -> str:
    lineage = run.get("lineage") or {}
    lines = [f"- weights sha256: `{run.get('weights_sha256', 'not recorded')}`"]
    if bundled_weights and bundled_weights[0] != run.get("weights_sha256"):
        sha256, dtype = bundled_weights
        lines.append(f"- bundled weights sha256: `{sha256}` (the run's weights stored as {dtype})")
    if lineage.get("parent"):
        lines.append(f"- started from `{lineage['parent']}` (sha256 `{lineage['parent_sha256']}`)")
    else:
        lines.append("- started from random weights")
    return "\n".join(lines)


def render_card(
    content: CardContent,
    config: dict,
    validation: dict | None = None,
    bundled_weights: tuple[str, str] | None = None,
) -> str:
    """The card's markdown. `config` is a run's config.json (with its `run` summary); `validation` the last
    validation's metrics with their `step`; `bundled_weights` (sha256, dtype) of a bundled copy of the weights,
    named when it differs from the run's file."""
    run = config.get("run", {})
    parts = [_front_matter(content, config, run), f"# {content.title}", "", content.summary, ""]
    parts += ["## Training", "", _training_table(config, run), "", "## Lineage", "", _lineage(run, bundled_weights), ""]
    if content.commands:
        parts += ["## Commands", "", "```bash", *content.commands, "```", ""]
    if validation:
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in validation.items() if k != "step")
        parts += ["## Last validation", "", f"Step {validation.get('step')}: {metrics} (validation crops).", ""]
    if content.evaluation:
        parts += ["## Evaluation", "", content.evaluation.strip(), ""]
    if content.limitations:
        parts += ["## Limitations", "", *(f"- {item}" for item in content.limitations), ""]
    if content.data_terms:
        parts += ["## Training data terms", "", content.data_terms, ""]
    return "\n".join(parts)


def write_run_card(run_dir: Path, validation: dict | None = None) -> Path:
    """RUN_DIR/README.md from RUN_DIR/config.json, written atomically; returns its path."""
    config = json.loads((run_dir / "config.json").read_text())
    stage, preset = config["train"]["stage"], config["model"]["preset"]
    content = CardContent(
        title=f"{preset}, stage {stage}",
        summary=f"A vae-restore `{preset}` model after stage `{stage}`, generated from this run's config.json.",
        commands=[f"python -m export.onnx --checkpoint {run_dir} --output {run_dir.parent / 'model.onnx'}"],
    )
    path = run_dir / CARD_NAME
    tmp = path.with_name(f".{CARD_NAME}.tmp")
    tmp.write_text(render_card(content, config, validation), encoding="utf-8")
    tmp.replace(path)
    return path
