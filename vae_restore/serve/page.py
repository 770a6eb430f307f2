"""The web page at `/`: plain HTML, CSS and JS shipped in the package (no CDN, no web fonts), so it works
on a machine with no network. The assets are read once, when the app is made."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import Response

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# Only this server's own assets; restored images are shown from blob: URLs made by the page.
POLICY = "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; connect-src 'self'"


def add_page(app: FastAPI) -> None:
    static = files(__package__) / "static"
    content = {name: (static / name).read_bytes() for name in ASSETS}

    def asset(name: str) -> Response:
        headers = {"Content-Security-Policy": POLICY, "Cache-Control": "no-cache"}
        return Response(content[name], media_type=ASSETS[name], headers=headers)

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return asset("index.html")

    @app.get("/static/app.js", include_in_schema=False)
    async def script() -> Response:
        return asset("app.js")

    @app.get("/static/style.css", include_in_schema=False)
    async def style() -> Response:
        return asset("style.css")
