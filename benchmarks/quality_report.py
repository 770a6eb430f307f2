"""The quality benchmark's one table (rows = method, columns = distortion × PSNR/SSIM), as Markdown and JSON."""

from __future__ import annotations

import math
from pathlib import Path

from vae_restore.evaluation.report import write_summary

NOT_MEASURED = "not measured yet"


def _cell(value: float | None, metric: str, best: bool) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value:.2f}" if metric == "psnr" else f"{value:.4f}"
    return f"**{text}**" if best else text


def markdown_table(report: dict) -> str:
    """Best value per column in bold; a column that could not be measured says so in every row."""
    columns, rows = report["columns"], report["rows"]
    header = ["method"] + [f"{c['label']} {m.upper()}" for c in columns for m in ("psnr", "ssim")]
    best = {}
    for c in columns:
        for m in ("psnr", "ssim"):
            values = [r["scores"].get(c["label"], {}).get(m) for r in rows]
            finite = [v for v in values if v is not None and math.isfinite(v)]
            best[(c["label"], m)] = max(finite) if finite else None
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["method"]]
        for c in columns:
            for m in ("psnr", "ssim"):
                if c.get("not_measured"):
                    cells.append(NOT_MEASURED)
                    continue
                value = r["scores"].get(c["label"], {}).get(m)
                cells.append(_cell(value, m, value is not None and value == best[(c["label"], m)]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_label(stage: dict) -> str:
    """`clear`, or `distorted (MIXTURE)`: a method may fine-tune one clear model on several mixtures."""
    if stage["stage"] == "distorted" and stage.get("config"):
        return f"distorted ({Path(stage['config']).stem})"
    return stage["stage"]


def stage_shape(stage: dict) -> str:
    """` (16 × 96², fp32)`: the batch, crop and precision a stage trained with (older reports lack them)."""
    if "crop_size" not in stage:
        return ""
    precision = {"no": "fp32"}.get(stage["mixed_precision"], stage["mixed_precision"])
    return f" ({stage['train_batch_size']} × {stage['crop_size']}², {precision})"


def training_table(report: dict) -> str:
    """Per trained method: preset size and cost, and the steps and time each stage got."""
    lines = ["| method | parameters | GFLOP/tile | stages (steps, seconds) |", "|---|---|---|---|"]
    for r in report["rows"]:
        if not r.get("training"):
            continue
        stages = ", ".join(
            f"{stage_label(s)} {s['steps']} in {s['seconds']:.0f} s{stage_shape(s)}" for s in r["training"]
        )
        params = f"{r['parameters']:,}" if r.get("parameters") else "–"
        gflops = f"{r['gflops']:.2f}" if r.get("gflops") else "–"
        lines.append(f"| {r['method']} | {params} | {gflops} | {stages} |")
    return "\n".join(lines)


def notes(report: dict) -> list[str]:
    found = [f"- {c['label']}: {NOT_MEASURED} ({c['not_measured']})" for c in report["columns"] if c["not_measured"]]
    found += [f"- {name}: skipped ({why})" for name, why in report["skipped_methods"].items()]
    return found


def write_report(report: dict, output: Path) -> tuple[Path, Path]:
    """OUTPUT/quality.md and OUTPUT/quality.json; rewritten after every method so a cut-off run keeps its rows."""
    output.mkdir(parents=True, exist_ok=True)
    s = report["settings"]
    text = [
        f"# Quality benchmark ({report['device']})",
        "",
        f"Budget per stage: {s['budget']}, batch {s['train_batch_size']} unless a recipe sets one; "
        f"{s['num_images']} images per column "
        f"(seed {s['seed']}); mean PSNR (dB) and SSIM against the clear image, full resolution.",
        "",
        markdown_table(report),
        "",
        training_table(report),
    ]
    if found := notes(report):
        text += ["", *found]
    md, js = output / "quality.md", output / "quality.json"
    md.write_text("\n".join(text) + "\n")
    write_summary(report, js)
    return md, js
