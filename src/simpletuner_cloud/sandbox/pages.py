"""Cursor pagination like Replicate's: newest first, opaque `cursor` query values, absolute
`next`/`previous` URLs that keep the other query parameters."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlencode

from simpletuner_cloud.sandbox.problems import bad_request

T = TypeVar("T")


def _encode(kind: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}={seq}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = raw.partition("=")
        if kind not in ("b", "a"):
            raise ValueError(kind)
        return kind, int(value)
    except ValueError as exc:
        raise bad_request("Invalid cursor") from exc


def paginate(
    items: Sequence[T],
    *,
    seq_of: Callable[[T], int],
    render: Callable[[T], Any],
    url: str,
    query: dict[str, str],
    page_size: int,
) -> dict[str, Any]:
    """`items` newest first. A cursor "b=<seq>" means "older than seq", "a=<seq>" "newer than seq",
    so pages stay stable while new jobs arrive at the top."""
    cursor = query.get("cursor")
    others = {key: value for key, value in query.items() if key != "cursor"}
    if cursor:
        kind, seq = _decode(cursor)
        if kind == "b":
            window = [item for item in items if seq_of(item) < seq][:page_size]
        else:
            newer = [item for item in items if seq_of(item) > seq]
            window = newer[-page_size:]
    else:
        window = list(items[:page_size])

    def link(kind: str, seq: int) -> str:
        return f"{url}?{urlencode({**others, 'cursor': _encode(kind, seq)})}"

    next_url = previous_url = None
    if window:
        oldest, newest = seq_of(window[-1]), seq_of(window[0])
        if any(seq_of(item) < oldest for item in items):
            next_url = link("b", oldest)
        if any(seq_of(item) > newest for item in items):
            previous_url = link("a", newest)
    return {"next": next_url, "previous": previous_url, "results": [render(item) for item in window]}
