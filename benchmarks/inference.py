"""Tiled restoration speed: onnxruntime vs PyTorch eager on the same tiles, same machine, one run.

Each engine runs in its own spawned process, so its peak RSS is its own and the onnxruntime process
never imports torch (that is the production footprint); peaks accumulate over the images, smallest
first. The parent exports the model (a random-initialised `original` unless a checkpoint is given:
speed does not depend on the weights).
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vae_restore.tiling import OVERLAP, TILE, tile_grid

IMAGES = (("astronaut", None), ("hubble_deep_field", (2048, 1536)))  # (embedded sample, resize to W×H)
ENGINES = ("onnxruntime", "pytorch")


@dataclass(frozen=True)
class Measurement:
    engine: str
    image: str
    size: str
    tiles: int
    ms_per_image: float
    cpu_ms_per_image: float
    tiles_per_s: float
    gflops: float
    rss_loaded_mib: float
    peak_rss_mib: float
    provider: str


def benchmark_images(folder: Path) -> list[tuple[str, Path]]:
    """The two benchmark images as .npy files (children load them without scikit-image)."""
    from PIL import Image

    from vae_restore.data.embedded import embedded_images

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

    from vae_restore.models import load_model

    torch.set_num_threads(threads)
    model = load_model(weights, device)

    def run(tiles: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.restore(torch.from_numpy(tiles).to(device)).cpu().numpy()

    return run, device


def _onnxruntime_engine(model_path: Path, device: str, threads: int):
    from vae_restore.inference import Restorer

    restorer = Restorer(model_path, providers="cuda" if device == "cuda" else "cpu", threads=threads)
    return restorer.run_tiles, restorer.provider


_WORKER: dict = {}  # the engine loaded in this worker process


def load_engine(engine: str, weights: Path, model_path: Path, device: str, threads: int, tile_batch: int) -> None:
    """Worker initialiser: load one engine once and warm it up with one batch of tiles.

    An engine that cannot run on `device` (no CUDA, no CUDA provider) is reported, not fatal.
    """
    try:
        if engine == "pytorch":
            fn, provider = _pytorch_engine(weights, device, threads)
        else:
            fn, provider = _onnxruntime_engine(model_path, device, threads)
        fn(np.random.default_rng(0).random((tile_batch, 3, TILE, TILE), dtype=np.float32))
    except Exception as e:  # an initialiser that raises is restarted forever by the pool: it would hang
        reason = (str(e).splitlines() or [""])[0][:80]
        fn, provider = None, f"unavailable ({type(e).__name__}: {reason})"
    _WORKER.update(fn=fn, provider=provider, rss_loaded=_status_mib("VmRSS"))


def time_restore(image_path: Path, overlap: int, tile_batch: int) -> tuple[float, float]:
    """(wall, process CPU) seconds for one tiled restoration of the image with this worker's engine.

    CPU time is what the restoration costs when the machine is shared: it does not grow while other
    programs hold the cores (it does count every thread of a multi-threaded engine, spinning included).
    """
    from vae_restore.tiling import restore_tiled

    if _WORKER["fn"] is None:
        return float("nan"), float("nan")
    image = np.load(image_path).astype(np.float32) / 255.0
    wall, cpu = time.perf_counter(), time.process_time()
    restore_tiled(image, _WORKER["fn"], overlap=overlap, batch_size=tile_batch)
    return time.perf_counter() - wall, time.process_time() - cpu


def worker_memory() -> tuple[str, float, float]:
    return _WORKER["provider"], _WORKER["rss_loaded"], _status_mib("VmHWM")


def run_benchmark(
    checkpoint: Path | None = None,
    device: str = "cpu",
    tile_batch: int = 16,
    threads: int | None = None,
    repeats: int = 3,
    overlap: int = OVERLAP,
) -> list[dict]:
    """Both engines stay loaded in their own processes and take turns, so a load spike from other
    programs hits both alike; the fastest of `repeats` runs is kept (interference only adds time)."""
    from vae_restore.export.pipeline import export_onnx
    from vae_restore.models import load_model
    from vae_restore.models.cost import preset_cost

    threads = threads or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="vae-restore-bench-") as tmp:
        folder = Path(tmp)
        if checkpoint is None:
            import torch

            from vae_restore.models import VAE, save_model

            torch.manual_seed(0)
            checkpoint = save_model(VAE(), folder / "run" / "model.safetensors")
        model_path = export_onnx(checkpoint, folder / "model.onnx", check_batch_sizes=(1, tile_batch)).model
        flops_per_tile = preset_cost(load_model(checkpoint).preset).flops
        context = multiprocessing.get_context("spawn")
        pools = {
            engine: context.Pool(1, load_engine, (engine, Path(checkpoint), model_path, device, threads, tile_batch))
            for engine in ENGINES
        }
        results = []
        try:
            for label, image_path in benchmark_images(folder):
                times: dict[str, list[tuple[float, float]]] = {engine: [] for engine in ENGINES}
                for r in range(repeats):
                    for engine in ENGINES[:: 1 if r % 2 == 0 else -1]:
                        times[engine].append(pools[engine].apply(time_restore, (image_path, overlap, tile_batch)))
                height, width = np.load(image_path, mmap_mode="r").shape[:2]
                tiles = len(tile_grid(max(height, TILE), max(width, TILE), TILE, overlap))
                for engine in ENGINES:
                    provider, rss_loaded, peak = pools[engine].apply(worker_memory)
                    seconds = min(wall for wall, _ in times[engine])
                    cpu_seconds = min(cpu for _, cpu in times[engine])
                    results.append(
                        asdict(
                            Measurement(
                                engine=engine,
                                image=label,
                                size=f"{width}×{height}",
                                tiles=tiles,
                                ms_per_image=1000 * seconds,
                                cpu_ms_per_image=1000 * cpu_seconds,
                                tiles_per_s=tiles / seconds,
                                gflops=tiles * flops_per_tile / seconds / 1e9,
                                rss_loaded_mib=rss_loaded,
                                peak_rss_mib=peak,
                                provider=provider,
                            )
                        )
                    )
        finally:
            for pool in pools.values():
                pool.close()
                pool.join()
        return results


def _cell(value: float, digits: int, suffix: str = "") -> str:
    return "n/a" if value != value else f"{value:.{digits}f}{suffix}"  # NaN: the engine did not run


def markdown_table(results: list[dict], title: str) -> str:
    torch = {r["image"]: r for r in results if r["engine"] == "pytorch"}
    lines = [
        title,
        "",
        "| image | tiles | engine | provider | ms / image | CPU ms / image | tiles / s | GFLOP/s | RSS loaded (MiB)"
        " | peak RSS (MiB) | speed-up vs PyTorch (wall / CPU) |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        base = torch[r["image"]]
        lines.append(
            f"| {r['image']} | {r['tiles']} | {r['engine']} | {r['provider']} | {_cell(r['ms_per_image'], 0)} | "
            f"{_cell(r['cpu_ms_per_image'], 0)} | {_cell(r['tiles_per_s'], 1)} | {_cell(r['gflops'], 1)} | "
            f"{r['rss_loaded_mib']:.0f} | {r['peak_rss_mib']:.0f} | "
            f"{_cell(base['ms_per_image'] / r['ms_per_image'], 2, 'x')} / "
            f"{_cell(base['cpu_ms_per_image'] / r['cpu_ms_per_image'], 2, 'x')} |"
        )
    return "\n".join(lines)
