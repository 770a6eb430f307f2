"""Write one of scikit-image's sample images to a file (to try `vae-restore restore` offline; needs the `train` extra).

`--noise SIGMA` adds seeded Gaussian noise (SIGMA on the 0-255 scale), giving a distorted input to restore;
`--clear_copy PATH` writes the clear sample too, to score the restoration against.
The samples come from scikit-image, which the `infer` install alone does not have.
"""

from __future__ import annotations

import argparse

NAME = "sample-image"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli_common import image_file
    from ..data.embedded import EMBEDDED_NAMES

    parser.add_argument("name", choices=EMBEDDED_NAMES, help="sample name")
    parser.add_argument("output", type=image_file, help="image file to write (format from its suffix, e.g. .png)")
    parser.add_argument(
        "--noise",
        type=noise_sigma,
        default=0.0,
        metavar="SIGMA",
        help="Gaussian noise σ (0-255 scale) (default 0: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument(
        "--clear_copy",
        type=image_file,
        metavar="PATH",
        help="also write the sample without noise here: the clear original for `vae-restore restore --reference`",
    )
    parser.add_argument(
        "--size",
        type=parse_size,
        metavar="WxH",
        help="resize to W×H (bicubic), e.g. 2048x1536 (default: the sample's own size)",
    )


def noise_sigma(text: str) -> float:
    sigma = float(text)
    if not sigma >= 0.0 or sigma == float("inf"):  # `not >=` also catches NaN
        raise argparse.ArgumentTypeError(f"σ must be a finite number >= 0, got {text}")
    return sigma


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH such as 2048x1536, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"width and height must be positive, got {text!r}")
    return width, height


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from ..data.embedded import embedded_images
    from ..data.encode import save_rgb
    from ..errors import ConfigError

    image = Image.fromarray(dict(embedded_images())[args.name])
    if args.size:
        image = image.resize(args.size, Image.BICUBIC)
    if args.clear_copy is not None:
        if args.clear_copy.resolve() == args.output.resolve():
            raise ConfigError(f"--clear_copy {args.clear_copy} is the noisy output's path; name another file")
        save_rgb(np.asarray(image), args.clear_copy)
        print(f"wrote {args.clear_copy} (clear)")
    if args.noise > 0:
        pixels = np.asarray(image, dtype=np.float32)
        pixels = pixels + np.random.default_rng(args.seed).normal(0.0, args.noise, pixels.shape)
        image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    save_rgb(np.asarray(image), args.output)  # restore's settings: JPEG at quality 95, 4:4:4
    with Image.open(args.output) as written:
        print(f"wrote {args.output} ({written.width}x{written.height})")
    return 0
