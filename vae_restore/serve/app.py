"""The FastAPI app: health, readiness, the model's manifest, restoration, and the web page at `/`.

Every error, the app's own and FastAPI's (404, 405, validation), is a JSON body `{"error": "..."}`.
The app holds one `Restorer` (one onnxruntime session) for its whole life; requests share it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .. import __version__
from ..checksums import sha256_file
from ..inference import Restorer
from .limits import Admission, Limits, Refused, read_body
from .page import add_page
from .restoring import multipart_file, restore_upload

IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/tiff", "image/bmp", "image/gif")
RESTORE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The image: the multipart field `file`, or the raw body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            **{kind: {"schema": {"type": "string", "format": "binary"}} for kind in IMAGE_TYPES},
        },
    }
}
ERROR = {"content": {"application/json": {"example": {"error": "what is wrong"}}}}
RESTORE_RESPONSES = {
    200: {
        "description": "The restored image, in the upload's format (PNG for a name of no known format, or a GIF)",
        "content": {kind: {} for kind in IMAGE_TYPES},
        "headers": {"X-Model-Sha256": {"description": "sha256 of the model that restored it"}},
    },
    400: {"description": "A corrupt image or a malformed form", **ERROR},
    413: {"description": "The upload is over --max_upload_mb, or the image over --max_pixels", **ERROR},
    415: {"description": "The upload is not an image", **ERROR},
    503: {"description": "The queue is full; retry after the Retry-After header's seconds", **ERROR},
}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(restorer: Restorer, limits: Limits | None = None) -> FastAPI:
    """The service around `restorer`; `limits` bound uploads, images and the queue (defaults: `Limits()`)."""
    limits = limits or Limits()
    admission = Admission(limits)
    shas = {name: r.manifest.get("sha256") or sha256_file(r.path) for name, r in restorer.routed.items()}
    sha256 = shas[restorer.name]  # the model that restores (under auto, the one images go to otherwise)
    preset = (restorer.manifest.get("preset") or {}).get("name")
    app = FastAPI(
        title="vae-restore",
        version=__version__,
        description="Restore images with an exported vae-restore model on onnxruntime.",
        docs_url=None,  # FastAPI's /docs and /redoc pages load their scripts from a CDN: the schema stays
        redoc_url=None,
    )
    app.state.admission, app.state.limits, app.state.restorer = admission, limits, restorer

    @app.exception_handler(Refused)
    async def refused(request: Request, e: Refused) -> JSONResponse:
        return error(e.status, e.message, e.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def failed(request: Request, e: Exception) -> JSONResponse:  # logged by uvicorn as well
        return error(500, f"the server failed on this request ({type(e).__name__}); see its log")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return error(422, "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in e.errors()))

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="The model is loaded: what it is and what runs it")
    async def readyz() -> dict:
        return {
            "status": "ready",
            "sha256": sha256,
            "preset": preset,
            "model": restorer.describe(),
            "providers": restorer.providers,
            "running": admission.running,
            "queued": admission.waiting,
            "limits": {
                "max_upload_mb": limits.max_upload_mb,
                "max_pixels": limits.max_pixels,
                "max_concurrency": limits.max_concurrency,
                "max_queue": limits.max_queue,
            },
        }

    @app.get("/v1/model", summary="The model's manifest (model.onnx.json)")
    async def model() -> dict:
        return restorer.manifest

    @app.post(
        "/v1/restore",
        summary="Restore an image",
        response_class=Response,
        responses=RESTORE_RESPONSES,
        openapi_extra=RESTORE_BODY,
    )
    async def restore(request: Request) -> Response:
        async with admission.admit():
            headers = request.headers
            body = await read_body(request.stream(), headers.get("content-length"), limits.max_upload_bytes)
            content_type = headers.get("content-type", "")
            if content_type.lower().startswith("multipart/form-data"):
                data, filename = await run_in_threadpool(multipart_file, body, content_type)
            else:
                data, filename = body, None
            del body
            async with admission.slot():
                result = await run_in_threadpool(restore_upload, restorer, data, filename, limits.max_pixels)
        return Response(
            result.content,
            media_type=result.media_type,
            headers={
                "X-Model": result.model,
                "X-Model-Sha256": shas[result.model],
                "Content-Disposition": result.disposition,
            },
        )

    add_page(app)
    return app
