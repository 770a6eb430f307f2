"""`vae-restore serve`: every endpoint and every refusal through FastAPI's TestClient, then a real uvicorn
process on 127.0.0.1 under a bounded load, and SIGTERM while a request is in flight."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import psutil
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageCms

from vae_restore.cli import main
from vae_restore.inference import Restorer
from vae_restore.serve.app import create_app
from vae_restore.serve.limits import Limits

from ..conftest import subprocess_env, write_images
from ..onnx_models import exported_model
from ..serving import Server

TIMEOUT = 60  # seconds for any one request: every network call of these tests is bounded


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    return exported_model(tmp_path_factory)[1]


@pytest.fixture(scope="module")
def restorer(model_path):
    return Restorer(model_path, providers="cpu", threads=1)


def make_client(restorer, **limits) -> TestClient:
    defaults = {"max_upload_mb": 2, "max_pixels": 300_000, "max_concurrency": 1, "max_queue": 1}
    return TestClient(create_app(restorer, Limits(**{**defaults, **limits})))


@pytest.fixture
def client(restorer):
    with make_client(restorer) as client:
        yield client


def jpeg_with_metadata(path, size=(60, 90)):
    """A JPEG with an sRGB profile and EXIF (orientation 6: shown rotated), as cameras write them."""
    pixels = np.random.default_rng(3).integers(0, 256, (*size, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "ACME"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(pixels).save(path, icc_profile=srgb, exif=exif.tobytes())
    return path


def restored_by_cli(model_path, source, folder):
    """What `vae-restore restore` writes for `source`: (file name, bytes)."""
    assert main(["restore", str(source), "--model", str(model_path), "--output", str(folder)]) == 0
    (written,) = folder.iterdir()
    return written.name, written.read_bytes()


def test_health_readiness_and_the_manifest(client, model_path):
    manifest = json.loads(model_path.with_name(model_path.name + ".json").read_text())
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert (ready["status"], ready["sha256"], ready["preset"]) == ("ready", manifest["sha256"], "original")
    assert ready["model"] == str(model_path)
    assert ready["providers"] == ["CPUExecutionProvider"] and (ready["running"], ready["queued"]) == (0, 0)
    assert client.get("/v1/model").json() == manifest
    schema = client.get("/openapi.json").json()["paths"]
    assert set(schema) == {"/healthz", "/readyz", "/v1/model", "/v1/restore"}
    body = schema["/v1/restore"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["required"] == ["file"] and "image/jpeg" in body


def test_restore_gives_the_bytes_of_the_restore_command(client, model_path, tmp_path):
    """Multipart or raw body, the same decoding, format, metadata and encoder as `vae-restore restore`."""
    sha256 = client.get("/readyz").json()["sha256"]
    photo = jpeg_with_metadata(tmp_path / "photo.jpg")
    png = write_images(tmp_path, 1, size=(70, 50), names=["scan.png"])[0]
    for source in (photo, png):
        name, expected = restored_by_cli(model_path, source, tmp_path / f"cli-{source.stem}")
        kind = f"image/{Image.open(source).format.lower()}"
        answer = client.post("/v1/restore", files={"file": (source.name, source.read_bytes(), kind)})
        assert answer.status_code == 200, answer.text
        assert answer.content == expected and answer.headers["content-type"] == kind
        assert (
            answer.headers["x-model-sha256"] == sha256 and f'filename="{name}"' in answer.headers["content-disposition"]
        )
        assert answer.headers["x-model"] == model_path.name
        raw = client.post("/v1/restore", content=source.read_bytes(), headers={"content-type": kind})
        assert raw.status_code == 200 and raw.content == expected, "a raw body is named by its format"
    with Image.open(io.BytesIO(client.post("/v1/restore", content=photo.read_bytes()).content)) as out:
        assert out.size == (60, 90) and out.getexif()[0x0112] == 1, "upright, its orientation reset"


def test_names_without_a_format_and_gifs_come_back_as_png(client, tmp_path):
    gif = io.BytesIO()
    Image.new("RGB", (30, 20), (200, 10, 10)).save(gif, "GIF")
    for name in ("scan", "anim.gif", "../../etc/x.gif", 'a"\x01b.gif', "..", "C:\\photos\\x.gif"):
        answer = client.post("/v1/restore", files={"file": (name, gif.getvalue(), "image/gif")})
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(answer.content)).format == "PNG"
        assert "/" not in answer.headers["content-disposition"], "only the file name, never a path"
    assert (
        client.post("/v1/restore", content=gif.getvalue())
        .headers["content-disposition"]
        .startswith('inline; filename="image.gif.png"')
    )


def png_bytes(size):
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 120, 150)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [
        ({"content": b"x" * (2 * 1024 * 1024 + 1)}, 413, "larger than this server's limit of 2 MB"),
        ({"content": (b"x" * 65536 for _ in range(40))}, 413, "--max_upload_mb"),  # chunked: no Content-Length
        ({"content": png_bytes((600, 600))}, 413, "limit of 300000 pixels (--max_pixels)"),
        ({"content": b"%PDF-1.7 certainly no image"}, 415, "not an image"),
        ({"files": {"file": ("notes.txt", b"plain text", "text/plain")}}, 415, "notes.txt is not an image"),
        ({"content": png_bytes((40, 40))[:-60]}, 400, "not a readable image"),
        ({"content": b""}, 400, "the request has no image"),
        ({"files": {"other": ("a.png", png_bytes((8, 8)), "image/png")}}, 400, "no `file` field"),
        (
            {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data"}},
            400,
            "has no boundary",
        ),
    ],
)
def test_bad_input_gets_a_clear_json_answer(client, request_kwargs, status, message):
    answer = client.post("/v1/restore", **request_kwargs)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json" and message in answer.json()["error"]
    assert list(answer.json()) == ["error"]


def test_a_lying_content_length_is_not_trusted(restorer):
    """The body is counted as it arrives: a declared size under the limit does not let more through."""
    from vae_restore.serve.limits import Refused, read_body

    async def chunks():
        for _ in range(5):
            yield b"x" * 1000

    import asyncio

    with pytest.raises(Refused) as refused:
        asyncio.run(read_body(chunks(), "10", 4000))
    assert refused.value.status == 413
    assert asyncio.run(read_body(chunks(), None, 5000)) == b"x" * 5000


def test_unknown_paths_and_methods_answer_json(client):
    assert client.get("/nowhere").status_code == 404 and client.get("/nowhere").json() == {"error": "Not Found"}
    assert client.get("/docs").status_code == 404, "FastAPI's /docs page would load scripts from a CDN"
    assert client.get("/v1/restore").status_code == 405 and "error" in client.get("/v1/restore").json()


def test_an_unexpected_failure_is_a_json_500(restorer, monkeypatch):
    def broken(self, image):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Restorer, "restore_named", broken)
    client = TestClient(create_app(restorer), raise_server_exceptions=False)
    answer = client.post("/v1/restore", content=png_bytes((16, 16)))
    assert answer.status_code == 500 and "RuntimeError" in answer.json()["error"]


def test_a_full_queue_answers_503_with_retry_after(restorer, monkeypatch):
    """One restoration running and one waiting fill max_concurrency 1 + max_queue 1: the third is refused."""
    release, started = threading.Event(), threading.Semaphore(0)
    restore = Restorer.restore_named

    def held(self, image):
        started.release()
        assert release.wait(TIMEOUT)
        return restore(self, image)

    monkeypatch.setattr(Restorer, "restore_named", held)
    image = png_bytes((32, 32))
    with make_client(restorer) as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/v1/restore", content=image)
        assert started.acquire(timeout=TIMEOUT)
        second = pool.submit(client.post, "/v1/restore", content=image)
        deadline = time.monotonic() + TIMEOUT
        while client.get("/readyz").json()["queued"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = client.post("/v1/restore", content=image)
        release.set()
        assert first.result(TIMEOUT).status_code == 200 and second.result(TIMEOUT).status_code == 200
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "busy" in refused.json()["error"]


def test_uploads_are_never_written_to_disk(client, monkeypatch):
    """A multipart upload over Starlette's 1 MB spooling threshold is parsed in memory all the same."""

    def refuse(*args, **kwargs):
        raise AssertionError("an upload went to a temporary file")

    for name in ("SpooledTemporaryFile", "TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    noise = np.random.default_rng(0).integers(0, 256, (640, 640, 3), dtype=np.uint8)  # PNG can't compress noise
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    assert buffer.tell() > 1024 * 1024
    with make_client(client.app.state.restorer, max_pixels=500_000) as big:
        answer = big.post("/v1/restore", files={"file": ("noise.png", buffer.getvalue(), "image/png")})
    assert answer.status_code == 200, answer.text


def test_serve_without_a_model_says_that_model_is_needed(monkeypatch, capsys):
    import vae_restore.pretrained

    monkeypatch.setattr(vae_restore.pretrained, "default_model", lambda: None)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "--model" in err


def test_serve_uses_the_bundled_model_without_model(monkeypatch, model_path):
    import vae_restore.pretrained
    from vae_restore.cli import build_parser
    from vae_restore.commands.serve import model_file

    monkeypatch.setattr(vae_restore.pretrained, "default_model", lambda: model_path)
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, model_file(args)) == ("127.0.0.1", 8000, model_path)
    assert model_file(build_parser().parse_args(["serve", "--model", "other.onnx"])).name == "other.onnx"


def test_the_service_path_imports_no_torch(model_path):
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from vae_restore.cli import build_parser\n"
        "from vae_restore.commands import serve\n"
        "from vae_restore.inference import Restorer\n"
        "from vae_restore.serve.app import create_app\n"
        f"args = build_parser().parse_args(['serve', '--model', {str(model_path)!r}])\n"
        "client = TestClient(create_app(Restorer(serve.model_file(args), providers='cpu', threads=1)))\n"
        "import io\nfrom PIL import Image\nb = io.BytesIO(); Image.new('RGB', (20, 20)).save(b, 'PNG')\n"
        "assert client.post('/v1/restore', content=b.getvalue()).status_code == 200\n"
        "assert client.get('/').status_code == 200\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'accelerate'))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_real_server_under_load(model_path, tmp_path):
    """200 requests, 8 at a time, against max_concurrency 2 + max_queue 4: every answer is the restore
    command's bytes or a 503 with Retry-After (the client then backs off and retries), all in bounded time,
    and resident memory stops growing after the first hundred."""
    source = write_images(tmp_path / "in", 1, size=(100, 120), names=["photo.jpg"])[0]
    _, expected = restored_by_cli(model_path, source, tmp_path / "cli")
    data = source.read_bytes()
    server = Server(model_path, tmp_path / "server", "--max_concurrency", "2", "--max_queue", "4")
    try:
        process = psutil.Process(server.proc.pid)
        local = threading.local()

        def one(_):
            """Answers to one request: 503s until it is admitted, then its 200."""
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=server.url, timeout=TIMEOUT)
            answers = []
            while len(answers) < 100:
                answer = local.client.post("/v1/restore", files={"file": ("photo.jpg", data, "image/jpeg")})
                answers.append((answer.status_code, answer.content, answer.headers.get("retry-after")))
                if answer.status_code != 503:
                    break
                time.sleep(0.1)  # a scaled-down Retry-After
            return answers

        answers, resident = [], []
        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            for _ in range(2):
                for request in pool.map(one, range(100), timeout=150):
                    assert request[-1][0] == 200, request[-1][:2]
                    answers += request
                resident.append(process.memory_info().rss)
        seconds = time.monotonic() - start
        statuses = [status for status, _, _ in answers]
        assert set(statuses) <= {200, 503} and statuses.count(200) == 200, sorted(set(statuses))
        assert all(body == expected for status, body, _ in answers if status == 200)
        assert all(json.loads(body)["error"] and retry == "1" for status, body, retry in answers if status == 503)
        assert resident[1] - resident[0] < 50 * 1024 * 1024, [r / 2**20 for r in resident]
        assert seconds < 150
        print(
            f"200 requests in {seconds:.1f} s, {statuses.count(503)} answers 503, RSS (MiB) {resident[0] >> 20} "
            f"after 100 and {resident[1] >> 20} after 200"
        )
        assert server.terminate() == 0
        assert server.written() == [], "an upload left a file behind"
    finally:
        server.close()


def test_sigterm_finishes_the_request_in_flight_and_exits_0(model_path, tmp_path):
    image = write_images(tmp_path / "in", 1, size=(512, 512), names=["big.png"])[0]
    server = Server(model_path, tmp_path / "server")
    try:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client, ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.post, "/v1/restore", content=image.read_bytes())
            deadline = time.monotonic() + TIMEOUT
            with httpx.Client(base_url=server.url, timeout=TIMEOUT) as probe:
                while probe.get("/readyz").json()["running"] < 1:
                    assert time.monotonic() < deadline and not pending.done()
                    time.sleep(0.01)
            server.proc.send_signal(signal.SIGTERM)
            answer = pending.result(TIMEOUT)
        assert answer.status_code == 200
        assert Image.open(io.BytesIO(answer.content)).size == (512, 512)
        assert server.proc.wait(timeout=30) == 0, server.output
        assert "Shutting down" in server.output
    finally:
        server.close()
