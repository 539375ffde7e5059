"""The API reference at `/docs`: Swagger UI from the copy `fastapi-offline` ships (mounted by the app at
`DOCS_ASSETS`), so it renders with no network, under a Content-Security-Policy that allows our own files
and exactly the one inline script that starts Swagger UI (by its hash)."""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

DOCS_ASSETS = "/static-offline-docs"  # where fastapi-offline mounts its Swagger UI files
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

router = APIRouter(include_in_schema=False)


def content_security_policy(html: str) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    return (
        "default-src 'none'; "
        f"script-src 'self' {hashes}; "
        "style-src 'self'; "
        "img-src 'self' data:; "  # Swagger UI's stylesheet draws its icons as data: SVGs
        "connect-src 'self'; "  # the OpenAPI document and "Try it out"
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - API reference",
        swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        oauth2_redirect_url=None,
    )
    html = bytes(page.body).decode()
    return HTMLResponse(
        html, headers={"Content-Security-Policy": content_security_policy(html), "Cache-Control": "no-store"}
    )
