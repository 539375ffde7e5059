"""`/api/cloud/storage/...`: the S3-compatible endpoint a local-download job's trainer uploads to.
Public (SigV4 with the job's own key is its gate, not the management login), path-style, with its own
body limits; answers are S3's (XML errors), never the JSON error body of the rest of the API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from simpletuner_cloud.services.storage_ingress import PREFIX, IngressRequest, StorageIngress

router = APIRouter(prefix=PREFIX, include_in_schema=False)
METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]


def ingress_of(request: Request) -> StorageIngress:
    state = request.app.state
    if getattr(state, "storage_ingress", None) is None:
        state.storage_ingress = StorageIngress(state.settings, state.database)
    return state.storage_ingress  # type: ignore[no-any-return]


@router.api_route("", methods=METHODS)
@router.api_route("/{path:path}", methods=METHODS)
async def storage(request: Request) -> Response:
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    answer = await ingress_of(request).handle(
        IngressRequest(
            method=request.method,
            raw_path=raw_path.decode("latin-1").split("?", 1)[0],
            raw_query=request.scope.get("query_string", b"").decode("latin-1"),
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw],
            peer=request.client.host if request.client else None,
            body=request.stream(),
        )
    )
    if answer.file is not None:
        return FileResponse(answer.file, headers=answer.headers, media_type="application/octet-stream")
    return Response(answer.body, status_code=answer.status, headers=answer.headers)
