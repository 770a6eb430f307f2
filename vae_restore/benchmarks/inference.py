"""Tiled restoration speed: onnxruntime vs PyTorch eager on the same tiles, same machine, one run.

Each (engine, image) runs in a fresh spawned process, so its peak RSS is its own and the onnxruntime
process never imports torch (that is the production footprint). The parent exports the model (a
random-initialised `original` unless a checkpoint is given: speed does not depend on the weights).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..tiling import OVERLAP, TILE, tile_grid

IMAGES = (("astronaut", None), ("hubble_deep_field", (2048, 1536)))  # (embedded sample, resize to W×H)
ENGINES = ("onnxruntime", "pytorch")


@dataclass(frozen=True)
class Measurement:
    engine: str
    image: str
    size: str
    tiles: int
    ms_per_image: float
    tiles_per_s: float
    gflops: float
    rss_loaded_mib: float
    peak_rss_mib: float
    provider: str


def forward_flops(preset) -> float:
    """Multiply-adds × 2 of one restoration forward (convolutions, transposed convolutions, linear layers)."""
    c1, c2, c3, c4 = preset.channels
    s, cin, side = preset.image_size, preset.in_channels, preset.bottleneck_size
    convs = [(cin, c1, s // 2), (c1, c2, s // 4), (c2, c3, s // 8), (c3, c4, s // 16)]  # (in, out, output side)
    conv = sum(i * o * 16 * n * n for i, o, n in convs)
    deconv = sum(o * i * 16 * n * n for i, o, n in convs)  # mirrored: each input pixel scatters a 4×4 kernel
    linear = c4 * side * side * preset.hidden_dim * 2 + preset.hidden_dim * preset.latent_dim * 3
    return 2.0 * (conv + deconv + linear)


def benchmark_images(folder: Path) -> list[tuple[str, Path]]:
    """The two benchmark images as .npy files (children load them without scikit-image)."""
    from PIL import Image

    from ..data.embedded import embedded_images

    samples = dict(embedded_images())
    paths = []
    for name, size in IMAGES:
        image = Image.fromarray(samples[name])
        if size:
            image = image.resize(size, Image.BICUBIC)
        path = folder / f"{name}_{image.width}x{image.height}.npy"
        np.save(path, np.asarray(image))
        paths.append((f"{name} {image.width}×{image.height}", path))
    return paths


def _status_mib(key: str) -> float:
    """VmRSS / VmHWM (peak) of this process from /proc; unlike ru_maxrss, VmHWM is not inherited from the parent."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _pytorch_engine(weights: Path, device: str, threads: int):
    import torch

    from ..models import load_model

    torch.set_num_threads(threads)
    model = load_model(weights, device)

    def run(tiles: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.restore(torch.from_numpy(tiles).to(device)).cpu().numpy()

    return run, device


def _onnxruntime_engine(model_path: Path, device: str, threads: int):
    from ..inference import Restorer

    restorer = Restorer(model_path, providers="cuda" if device == "cuda" else "cpu", threads=threads)
    return restorer.run_tiles, restorer.provider


def measure(engine: str, weights: Path, model_path: Path, label: str, image_path: Path, args: dict) -> dict:
    """One (engine, image) measurement; runs in its own process."""
    from ..tiling import restore_tiled

    if engine == "pytorch":
        fn, provider = _pytorch_engine(weights, args["device"], args["threads"])
    else:
        fn, provider = _onnxruntime_engine(model_path, args["device"], args["threads"])
    image = np.load(image_path).astype(np.float32) / 255.0
    batch, overlap = args["tile_batch"], args["overlap"]
    fn(np.random.default_rng(0).random((batch, 3, TILE, TILE), dtype=np.float32))  # warm-up, one batch
    rss_loaded = _status_mib("VmRSS")
    times = []
    for _ in range(args["repeats"]):
        start = time.perf_counter()
        restore_tiled(image, fn, overlap=overlap, batch_size=batch)
        times.append(time.perf_counter() - start)
    seconds = min(times)  # the least disturbed run: other processes only ever add time
    tiles = len(tile_grid(max(image.shape[0], TILE), max(image.shape[1], TILE), TILE, overlap))
    return asdict(
        Measurement(
            engine=engine,
            image=label,
            size=f"{image.shape[1]}×{image.shape[0]}",
            tiles=tiles,
            ms_per_image=1000 * seconds,
            tiles_per_s=tiles / seconds,
            gflops=tiles * args["flops_per_tile"] / seconds / 1e9,
            rss_loaded_mib=rss_loaded,
            peak_rss_mib=_status_mib("VmHWM"),
            provider=provider,
        )
    )


def run_benchmark(
    checkpoint: Path | None = None,
    device: str = "cpu",
    tile_batch: int = 16,
    threads: int | None = None,
    repeats: int = 3,
    overlap: int = OVERLAP,
) -> list[dict]:
    from ..export.pipeline import export_onnx
    from ..models import load_model

    with tempfile.TemporaryDirectory(prefix="vae-restore-bench-") as tmp:
        folder = Path(tmp)
        if checkpoint is None:
            import torch

            from ..models import VAE, save_model

            torch.manual_seed(0)
            checkpoint = save_model(VAE(), folder / "run" / "model.safetensors")
        model_path = export_onnx(checkpoint, folder / "model.onnx", check_batch_sizes=(1, tile_batch)).model
        args = {
            "device": device,
            "threads": threads or os.cpu_count() or 1,
            "tile_batch": tile_batch,
            "repeats": repeats,
            "overlap": overlap,
            "flops_per_tile": forward_flops(load_model(checkpoint).preset),
        }
        context = multiprocessing.get_context("spawn")
        results = []
        for label, image_path in benchmark_images(folder):
            for engine in ENGINES:
                with context.Pool(1) as pool:
                    results.append(pool.apply(measure, (engine, Path(checkpoint), model_path, label, image_path, args)))
        return results


def markdown_table(results: list[dict], title: str) -> str:
    torch_ms = {r["image"]: r["ms_per_image"] for r in results if r["engine"] == "pytorch"}
    lines = [
        title,
        "",
        "| image | tiles | engine | provider | ms / image | tiles / s | GFLOP/s | RSS loaded (MiB) | peak RSS (MiB)"
        " | speed-up vs PyTorch |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['image']} | {r['tiles']} | {r['engine']} | {r['provider']} | {r['ms_per_image']:.0f} | "
            f"{r['tiles_per_s']:.1f} | {r['gflops']:.1f} | {r['rss_loaded_mib']:.0f} | {r['peak_rss_mib']:.0f} | "
            f"{torch_ms[r['image']] / r['ms_per_image']:.2f}x |"
        )
    return "\n".join(lines)
