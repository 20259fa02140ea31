"""Serve the web page: `/` is its index.html, `/web/*` its script, styles and icon (all from the app: no CDN).

The page holds no data of its own, so it loads without an API key (ApiKeys leaves `/` and `/web/` open) and
asks for one when the API answers 401.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def install_web(app: FastAPI) -> None:
    """Add the page's routes to the app."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        # no-cache: a page kept from an older version would call routes that changed
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/web", StaticFiles(directory=STATIC_DIR), name="web")
