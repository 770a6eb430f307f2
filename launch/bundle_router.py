"""Put a trained damage detector into the package with its routing rule: this makes `pretrained:auto`.

    python launch/bundle_router.py --detector runs/detector --route aging:0.8:aged --otherwise general
    python launch/benchmark_model.py --model pretrained:auto --output scores
    python launch/bundle_router.py --scores scores/scores.json --card configs/cards/auto.md

The first call copies DETECTOR/detector.onnx and its manifest (checked against each other first) into
vae_restore/pretrained/router/ and writes router.json beside them; every model a route names must be bundled.
The second writes the card: the --card markdown with its `<!-- evaluation -->` line replaced by the table of
the scores file, which is bundled beside it, so the card's figures are the scores file's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the clone: `benchmarks` is not installed

SCORES_FILE = "scores.json"


def parse_route(text: str):
    from vae_restore.routing import Route

    try:
        group, above, model = text.split(":")
        return Route(group, float(above), model)
    except ValueError:
        message = f"expected GROUP:THRESHOLD:MODEL such as aging:0.8:aged, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", type=Path, help="launch/train_detector.py's --output_dir")
    parser.add_argument(
        "--route",
        type=parse_route,
        action="append",
        metavar="GROUP:THRESHOLD:MODEL",
        help="images whose GROUP probability is above THRESHOLD go to bundled MODEL (repeatable; first match wins)",
    )
    parser.add_argument("--otherwise", default="general", help="the bundled model for every other image")
    parser.add_argument("--max_side", type=int, default=1024, help="the detector sees at most this centre crop")
    parser.add_argument("--scores", type=Path, help="scores.json of launch/benchmark_model.py --model pretrained:auto")
    parser.add_argument("--card", type=Path, help="with --scores: markdown with an `<!-- evaluation -->` line")
    args = parser.parse_args(argv)
    if args.scores:
        if args.card is None:
            parser.error("--scores writes the card: pass --card too")
        return write_card(args.scores, args.card)
    if args.detector is None or not args.route:
        parser.error("pass --detector and at least one --route (or --scores and --card to write the card)")

    from vae_restore import pretrained
    from vae_restore.errors import CheckpointError
    from vae_restore.export.detector_export import DETECTOR_FILE
    from vae_restore.export.manifest import manifest_path, verify_model_file
    from vae_restore.routing import MEASURES, RULE_FILE, RoutingRule

    graph = args.detector / DETECTOR_FILE
    groups = verify_model_file(graph)["groups"]
    for model in [args.otherwise, *(route.model for route in args.route)]:
        pretrained.model_dir(model)  # a CheckpointError naming the bundled models if it is not one
    unknown = sorted({route.group for route in args.route} - set(groups) - set(MEASURES))
    if unknown:
        raise CheckpointError(f"{graph} scores {groups} and the router measures {list(MEASURES)}, not {unknown}")
    folder = pretrained.PRETRAINED_DIR / pretrained.ROUTER
    folder.mkdir(exist_ok=True)
    for source in (graph, manifest_path(graph)):
        shutil.copyfile(source, folder / source.name)
    rule = RoutingRule(folder / DETECTOR_FILE, tuple(args.route), args.otherwise, args.max_side)
    (folder / RULE_FILE).write_text(json.dumps(rule.to_dict(), indent=2) + "\n")
    print(f"bundled {folder}: {rule.describe()}")
    return 0


def write_card(scores: Path, template: Path) -> int:
    from benchmarks.model_scores import markdown
    from vae_restore import pretrained
    from vae_restore.errors import ConfigError

    text, marker = template.read_text(encoding="utf-8"), "<!-- evaluation -->"
    if marker not in text:
        raise ConfigError(f"{template} has no `{marker}` line for the scores table")
    folder = pretrained.PRETRAINED_DIR / pretrained.ROUTER
    shutil.copyfile(scores, folder / SCORES_FILE)
    card = text.replace(marker, markdown(json.loads(scores.read_text())).strip())
    (folder / pretrained.CARD_FILE).write_text(card, encoding="utf-8")
    print(f"wrote {folder / pretrained.CARD_FILE}")
    return 0


if __name__ == "__main__":
    from vae_restore.cli_common import run_with_clear_errors

    sys.exit(run_with_clear_errors(main))
