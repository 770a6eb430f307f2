"""Restore-service speed: requests/s and p50/p95 latency at N concurrent clients, beside `Restorer.restore`.

    python launch/benchmark_serve.py --model model.onnx [--clients 1,4,8] [--requests 32] [--threads 1]

Starts `vae-restore serve` on 127.0.0.1 (a free port) in its own process, sends the same JPEG
(scikit-image's 512×512 astronaut at quality 90, or --image) as multipart uploads from N threads with
keep-alive connections, then times `Restorer.restore` on the same file in this process with the same
intra-op thread count as one of the server's restorations, before and after the service's runs (a shared
machine's load drifts). CPU ms are the server process's CPU time per request (psutil) and this process's
per restoration: on a loaded machine they vary much less than wall times.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def astronaut_jpeg() -> bytes:
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def multipart(data: bytes, name: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
    head += "Content-Type: image/jpeg\r\n\r\n"
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "vae_restore.cli", "serve", "--model", str(args.model), "--port", str(port)]
    command += ["--threads", str(args.threads), "--max_concurrency", str(args.max_concurrency)]
    command += ["--max_queue", str(args.max_queue), "--providers", args.providers, "--log_level", "warning"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    server = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 120
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return server
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start (exit status {server.poll()})")
        time.sleep(0.2)


def load(server, port: int, body: bytes, content_type: str, clients: int, requests: int) -> dict:
    """`requests` uploads from `clients` threads, one keep-alive connection each: latencies and throughput."""

    def client(count: int) -> list[tuple[int, float]]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        done = []
        for _ in range(count):
            start = time.perf_counter()
            connection.request("POST", "/v1/restore", body, {"Content-Type": content_type})
            answer = connection.getresponse()
            answer.read()
            done.append((answer.status, time.perf_counter() - start))
        connection.close()
        return done

    shares = [requests // clients + (i < requests % clients) for i in range(clients)]
    cpu = sum(server.cpu_times()[:2])
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for share in pool.map(client, shares) for r in share]
    wall = time.perf_counter() - start
    cpu = sum(server.cpu_times()[:2]) - cpu
    ok = sorted(seconds for status, seconds in results if status == 200)
    return {
        "clients": clients,
        "requests": requests,
        "ok": len(ok),
        "other_statuses": sorted({status for status, _ in results if status != 200}),
        "requests_per_s": len(ok) / wall,
        "p50_ms": 1000 * statistics.median(ok),
        "p95_ms": 1000 * ok[min(len(ok) - 1, round(0.95 * (len(ok) - 1)))],
        "server_cpu_ms_per_request": 1000 * cpu / len(results),
    }


def restorer_time(args: argparse.Namespace, path: Path, repeats: int) -> dict:
    from vae_restore.inference import Restorer
    from vae_restore.serve.limits import session_threads

    restorer = Restorer(
        args.model, providers=args.providers, threads=session_threads(args.max_concurrency, args.threads)
    )
    restorer.restore(path)
    times, cpu = [], time.process_time()
    for _ in range(repeats):
        start = time.perf_counter()
        restorer.restore(path)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    return {
        "median_ms": 1000 * statistics.median(times),
        "min_ms": 1000 * min(times),
        "cpu_ms": 1000 * cpu / repeats,
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    from vae_restore.cli_common import new_file, positive_int, positive_int_list

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model.onnx from `python -m export.onnx`")
    parser.add_argument("--image", type=Path, help="a JPEG to send (default: the astronaut, 512×512, quality 90)")
    parser.add_argument(
        "--clients", type=positive_int_list, default=[1, 4, 8], help="concurrent clients (default 1,4,8)"
    )
    parser.add_argument("--requests", type=positive_int, default=32, help="timed requests per setting (default 32)")
    parser.add_argument("--warmup", type=positive_int, default=3, help="untimed requests first (default 3)")
    parser.add_argument("--threads", type=positive_int, default=1, help="the server's --threads (default 1)")
    parser.add_argument("--max_concurrency", type=positive_int, default=1, help="the server's (default 1)")
    parser.add_argument("--max_queue", type=positive_int, default=16, help="the server's (default 16)")
    parser.add_argument("--providers", default="cpu", help="onnxruntime providers for both (default cpu)")
    parser.add_argument("--json", type=new_file, help="also write the results here")
    args = parser.parse_args(argv)

    import psutil

    data = args.image.read_bytes() if args.image else astronaut_jpeg()
    body, content_type = multipart(data, "photo.jpg")
    with tempfile.TemporaryDirectory() as folder:  # the benchmark's own copy of the image, not an upload
        path = Path(folder) / "photo.jpg"
        path.write_bytes(data)
        repeats = max(5, args.requests // 2)
        before = restorer_time(args, path, repeats)
        port = free_port()
        server = start_server(args, port)
        try:
            process = psutil.Process(server.pid)
            load(process, port, body, content_type, 1, args.warmup)
            rows = [load(process, port, body, content_type, clients, args.requests) for clients in args.clients]
        finally:
            server.terminate()
            server.wait(timeout=120)
        after = restorer_time(args, path, repeats)
    baseline = min(before["median_ms"], after["median_ms"])
    for name, run in (("before", before), ("after", after)):
        print(
            f"Restorer.restore on the same file, {name} the service: median {run['median_ms']:.0f} ms, "
            f"fastest {run['min_ms']:.0f} ms, CPU {run['cpu_ms']:.0f} ms ({run['repeats']} runs)"
        )
    print(
        "| clients | requests | answered 200 | requests/s | p50 ms | p95 ms | p50 / Restorer median | server CPU ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['clients']} | {row['requests']} | {row['ok']} | {row['requests_per_s']:.2f} | "
            f"{row['p50_ms']:.0f} | {row['p95_ms']:.0f} | {row['p50_ms'] / baseline:.2f}x | "
            f"{row['server_cpu_ms_per_request']:.0f} |"
        )
    if args.json:
        results = {"service": rows, "restorer_before": before, "restorer_after": after}
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
