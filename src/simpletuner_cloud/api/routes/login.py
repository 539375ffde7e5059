"""The login link printed by `simpletuner server`: trades the admin token for an HttpOnly,
SameSite=Strict session cookie so a remote browser can use the Cloud tab."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from simpletuner_cloud.api.security import session_value, shown_path
from simpletuner_cloud.errors import Unauthorized
from simpletuner_cloud.security.admin_token import SESSION_COOKIE, read_admin_token, token_matches

router = APIRouter(tags=["auth"])


@router.get("/login", include_in_schema=False)
async def login(request: Request, token: str = Query(..., min_length=1)) -> RedirectResponse:
    settings = request.app.state.settings
    expected = read_admin_token(settings)
    if not expected or not token_matches(expected, token):
        raise Unauthorized(
            "That login link is not valid.",
            hint="Use the link `simpletuner server` printed (its token is the one in "
            f"{shown_path(settings.admin_token_path)}).",
        )
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_value(expected),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response
