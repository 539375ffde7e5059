"""Routes that serve the Cloud tab page and its static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from simpletuner_cloud import __version__
from simpletuner_cloud.settings import SANDBOX_BANNER

HERE = Path(__file__).parent

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
router = APIRouter(include_in_schema=False)
static_files = StaticFiles(directory=HERE / "static")


@router.get("/")
async def index() -> RedirectResponse:
    return RedirectResponse("/cloud", status_code=307)


@router.get("/cloud", response_class=HTMLResponse)
async def cloud_tab(request: Request) -> HTMLResponse:
    settings = request.app.state.settings
    html = templates.get_template("cloud.html").render(
        version=__version__,
        sandbox=settings.sandbox,
        sandbox_banner=SANDBOX_BANNER,
    )
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            "Cache-Control": "no-store",  # X-Frame-Options and Referrer-Policy: api/headers.py
        },
    )
