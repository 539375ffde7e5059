"""The S3 XML the endpoint speaks: the answers of ListObjectsV2 and the multipart calls, and the one
request body it reads (CompleteMultipartUpload)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import quote
from xml.sax.saxutils import escape

from simpletuner_cloud.storage.errors import S3Error
from simpletuner_cloud.storage.multipart import ListedPart
from simpletuner_cloud.storage.objects import ListedFile

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_COMPLETE_BODY = 1024 * 1024


def _element(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def list_objects_v2(
    *,
    bucket: str,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    files: list[ListedFile],
    common_prefixes: list[str],
    etags: dict[str, str],
    truncated: bool,
    continuation_token: str | None,
    next_token: str | None,
    start_after: str | None,
    url_encoded: bool,
) -> bytes:
    def shown(value: str) -> str:
        return quote(value, safe="/") if url_encoded else value

    parts = [
        f'{HEADER}<ListBucketResult xmlns="{NAMESPACE}">',
        _element("Name", bucket),
        _element("Prefix", shown(prefix)),
        _element("KeyCount", len(files) + len(common_prefixes)),
        _element("MaxKeys", max_keys),
        _element("IsTruncated", "true" if truncated else "false"),
    ]
    if delimiter:
        parts.append(_element("Delimiter", shown(delimiter)))
    if url_encoded:
        parts.append(_element("EncodingType", "url"))
    if continuation_token:
        parts.append(_element("ContinuationToken", continuation_token))
    if next_token:
        parts.append(_element("NextContinuationToken", next_token))
    if start_after:
        parts.append(_element("StartAfter", shown(start_after)))
    for item in files:
        parts.append(
            "<Contents>"
            + _element("Key", shown(item.key))
            + _element("LastModified", timestamp(item.mtime))
            + _element("ETag", f'"{etags.get(item.key, "")}"')
            + _element("Size", item.size)
            + _element("StorageClass", "STANDARD")
            + "</Contents>"
        )
    for common in common_prefixes:
        parts.append("<CommonPrefixes>" + _element("Prefix", shown(common)) + "</CommonPrefixes>")
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()


def initiate_multipart(bucket: str, key: str, upload_id: str) -> bytes:
    return (
        f'{HEADER}<InitiateMultipartUploadResult xmlns="{NAMESPACE}">'
        + _element("Bucket", bucket)
        + _element("Key", key)
        + _element("UploadId", upload_id)
        + "</InitiateMultipartUploadResult>"
    ).encode()


def complete_multipart(
    location: str,
    bucket: str,
    key: str,
    etag: str,
    checksum: tuple[str, str, str] | None = None,
) -> bytes:
    """`checksum`: (algorithm, value, COMPOSITE or FULL_OBJECT) of an upload created with one."""
    extra = ""
    if checksum is not None:
        algorithm, value, kind = checksum
        extra = _element(f"Checksum{algorithm.upper()}", value) + _element("ChecksumType", kind)
    return (
        f'{HEADER}<CompleteMultipartUploadResult xmlns="{NAMESPACE}">'
        + _element("Location", location)
        + _element("Bucket", bucket)
        + _element("Key", key)
        + _element("ETag", f'"{etag}"')
        + extra
        + "</CompleteMultipartUploadResult>"
    ).encode()


def parse_complete(body: bytes) -> list[ListedPart]:
    """The listed parts in the listed order, each with the Checksum<ALGORITHM> it gives, if any."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise S3Error("MalformedXML", "The XML you provided was not well-formed.")
    try:
        root = ET.fromstring(body)  # noqa: S314 (no DOCTYPE, so no entities; size bounded by the caller)
    except ET.ParseError:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed.") from None
    parts = []
    for element in root:
        if element.tag.rsplit("}", 1)[-1] != "Part":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in element}
        number = fields.get("PartNumber", "")
        # ASCII digits only: int() also takes a sign, "_" and other scripts' digits.
        if "ETag" not in fields or not (number.isascii() and number.isdigit()) or len(number) > 5:
            raise S3Error("MalformedXML", "Each Part needs a PartNumber and an ETag.")
        checksums = {
            name.removeprefix("Checksum").lower(): value
            for name, value in fields.items()
            if name.startswith("Checksum") and name != "ChecksumType"
        }
        parts.append(ListedPart(int(number), fields["ETag"], checksums))
    return parts
