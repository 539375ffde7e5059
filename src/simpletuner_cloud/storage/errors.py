"""S3 errors as S3 clients understand them: an XML `<Error>` body with a code, message and the
request's resource, and the status S3 uses for that code."""

from __future__ import annotations

from xml.sax.saxutils import escape

STATUS_BY_CODE: dict[str, int] = {
    "AccessDenied": 403,
    "InvalidAccessKeyId": 403,
    "SignatureDoesNotMatch": 403,
    "RequestTimeTooSkewed": 403,
    "ExpiredToken": 400,
    "AuthorizationHeaderMalformed": 400,
    "InvalidRequest": 400,
    "InvalidArgument": 400,
    "InvalidDigest": 400,
    "BadDigest": 400,
    "XAmzContentSHA256Mismatch": 400,
    "IncompleteBody": 400,
    "MalformedTrailerError": 400,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "InvalidPart": 400,
    "InvalidPartOrder": 400,
    "MalformedXML": 400,
    "KeyTooLongError": 400,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "MethodNotAllowed": 405,
    "InvalidRange": 416,
    "InternalError": 500,
    "NotImplemented": 501,
}


class S3Error(Exception):
    def __init__(self, code: str, message: str, *, resource: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.resource = resource

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 400)

    def to_xml(self, request_id: str = "") -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(self.code)}</Code><Message>{escape(self.message)}</Message>"
            f"<Resource>{escape(self.resource)}</Resource><RequestId>{escape(request_id)}</RequestId></Error>"
        ).encode()
