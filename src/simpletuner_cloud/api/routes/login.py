"""The login link printed by `simpletuner server` (`GET /login?token=`) and the Cloud tab's sign-in
form (`POST /login`, the token in a JSON body): each trades the admin token for an HttpOnly,
SameSite=Strict session cookie so a remote browser can use the Cloud tab."""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from simpletuner_cloud.api.security import has_forwarding_header, session_value, shown_path
from simpletuner_cloud.errors import Unauthorized
from simpletuner_cloud.security.admin_token import SESSION_COOKIE, read_admin_token, token_matches

router = APIRouter(tags=["auth"])
R = TypeVar("R", bound=Response)


class LoginRequest(BaseModel):
    token: str = Field(min_length=1, max_length=1024)


@router.get("/login", include_in_schema=False)
async def login(request: Request, token: str = Query(..., min_length=1)) -> RedirectResponse:
    """The printed link: sets the cookie and goes to the Cloud tab."""
    return _signed_in(request, token, RedirectResponse("/", status_code=303))


@router.post("/login", include_in_schema=False, status_code=204)
async def login_with_token(request: Request, body: LoginRequest) -> Response:
    """The Cloud tab's sign-in form: the token in a JSON body, so it stays out of the address bar,
    the browser's history and any proxy's access log. JSON only, so no other site's form can post it."""
    return _signed_in(request, body.token, Response(status_code=204))


def _signed_in(request: Request, token: str, response: R) -> R:
    settings = request.app.state.settings
    expected = read_admin_token(settings)
    if not expected or not token_matches(expected, token):
        raise Unauthorized(
            "That login link is not valid.",
            hint="Use the link `simpletuner server` printed (its token is the one in "
            f"{shown_path(settings.admin_token_path)}).",
        )
    response.set_cookie(
        SESSION_COOKIE,
        session_value(expected),
        httponly=True,
        samesite="strict",
        secure=came_over_https(request),
        path="/",
    )
    return response


def came_over_https(request: Request) -> bool:
    """Whether the browser reached us over HTTPS. The server speaks plain HTTP, so behind a proxy the
    scheme is the proxy's word: `X-Forwarded-Proto` / `Forwarded: proto=`, and a forwarded request that
    names none counts as HTTPS (the recipes in deploy/ all end TLS in the proxy, and the seed's nginx
    `location /` sends no proto). Only a direct request over plain HTTP (this machine, or a LAN browser
    at http://<address>:8080) gets a cookie without `Secure`, which a browser would otherwise drop."""
    if request.url.scheme == "https":
        return True
    protos = [value.strip().lower() for value in request.headers.getlist("x-forwarded-proto")]
    for forwarded in request.headers.getlist("forwarded"):
        for part in forwarded.replace(",", ";").split(";"):
            name, _, value = part.strip().partition("=")
            if name.lower() == "proto":
                protos.append(value.strip().strip('"').lower())
    if protos:
        return protos[0].split(",")[0].strip() != "http"  # the first hop's word: the browser's side
    return has_forwarding_header(request)
