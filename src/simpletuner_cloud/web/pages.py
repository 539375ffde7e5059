"""Routes that serve the Cloud tab's shell and its static files. The shell is rendered here (header,
navigation, sandbox banner, whether this browser may use the API); each view is an ES module under
`static/js/views/` that reads the JSON API. Every URL in the page is relative, so it works unchanged
behind a reverse proxy or a tunnel."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from simpletuner_cloud import __version__
from simpletuner_cloud.api.security import is_local_request, presented_credentials_ok, shown_path
from simpletuner_cloud.settings import SANDBOX_BANNER

HERE = Path(__file__).parent
# No inline script or style anywhere: scripts, styles, fetches and the event stream come from this
# server only; nothing may frame the page or submit a form elsewhere.
CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
router = APIRouter(include_in_schema=False)
static_files = StaticFiles(directory=HERE / "static")


@router.get("/")
async def index() -> RedirectResponse:
    return RedirectResponse("cloud", status_code=307)  # relative: keeps a proxy's path prefix


@router.get("/cloud", response_class=HTMLResponse)
async def cloud_tab(request: Request) -> HTMLResponse:
    settings = request.app.state.settings
    signed_in = is_local_request(request, settings) or presented_credentials_ok(request, settings)
    html = templates.get_template("cloud.html").render(
        version=__version__,
        sandbox=settings.sandbox,
        sandbox_banner=SANDBOX_BANNER,
        signed_in=signed_in,
        token_path=shown_path(settings.admin_token_path),
    )
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",  # X-Frame-Options and Referrer-Policy: api/headers.py
        },
    )
