"""`/docs` renders offline: every asset it names is served by this app, none comes from a CDN, and
its Content-Security-Policy allows exactly the one inline script it carries."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx

SCRIPT_SRC = re.compile(r'<script[^>]*\ssrc="([^"]+)"')
LINK_HREF = re.compile(r'<link[^>]*\shref="([^"]+)"')
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


async def test_docs_names_only_assets_this_app_serves(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    scripts, links = SCRIPT_SRC.findall(page.text), LINK_HREF.findall(page.text)
    assert scripts == ["/static-offline-docs/swagger-ui-bundle.js"]
    assert links == ["/static-offline-docs/swagger-ui.css", "/static-offline-docs/favicon.png"]
    assert "cdn" not in page.text and not re.search(r"(src|href)=\"(https?:)?//", page.text)
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for url in scripts + links:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert kinds[url[url.rindex(".") :]] in asset.headers["content-type"], url
        assert len(asset.content) > 1000, url  # the real file, not an error page
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "simpletuner-cloud"


async def test_docs_csp_allows_exactly_its_inline_script(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    (inline,) = INLINE_SCRIPT.findall(page.text)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert page.headers["content-security-policy"] == (
        "default-src 'none'; "
        f"script-src 'self' 'sha256-{digest}'; "
        "style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
    assert page.headers["x-frame-options"] == "DENY"  # the hardening headers still apply


async def test_the_cdn_redoc_page_is_gone(client: httpx.AsyncClient) -> None:
    response = await client.get("/redoc")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
