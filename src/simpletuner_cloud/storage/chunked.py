"""The `aws-chunked` body framing boto3 uses over HTTPS (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`): hex
chunk sizes, each chunk, a zero chunk, then trailer lines such as `x-amz-checksum-crc32:<base64>`.
An incremental decoder: feed it the raw body as it arrives, get the object's bytes back."""

from __future__ import annotations

import re

from simpletuner_cloud.storage.errors import S3Error

# ASCII hex digits only: int(text, 16) also takes a sign, "0x", "_" and surrounding whitespace.
_HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
MAX_LINE = 4096  # a chunk-size line (with extensions) or one trailer line
MAX_TRAILERS = 16 * 1024
MAX_CHUNK = 64 * 1024 * 1024


def _malformed(detail: str) -> S3Error:
    return S3Error("IncompleteBody", f"The aws-chunked body is malformed: {detail}.")


class AwsChunkedDecoder:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state = "size"  # size -> data -> data_end -> ... -> trailers -> done
        self._remaining = 0
        self._trailer_bytes = 0
        self.trailers: dict[str, str] = {}

    @property
    def done(self) -> bool:
        return self._state == "done"

    def feed(self, data: bytes) -> bytes:
        """The decoded bytes this piece completes (possibly none)."""
        if self._state == "done":
            if data.strip(b"\r\n"):
                raise _malformed("bytes after the trailers")
            return b""
        self._buffer += data
        out = bytearray()
        while True:
            if self._state == "data":
                if not self._buffer:
                    break
                take = min(self._remaining, len(self._buffer))
                out += self._buffer[:take]
                del self._buffer[:take]
                self._remaining -= take
                if self._remaining:
                    break
                self._state = "data_end"
                continue
            line = self._line()
            if line is None:
                break
            if self._state == "size":
                self._start_chunk(line)
            elif self._state == "data_end":
                if line:
                    raise _malformed("a chunk is longer than its size says")
                self._state = "size"
            elif self._state == "trailers":
                self._trailer(line)
                if self._state == "done":
                    if bytes(self._buffer).strip(b"\r\n"):
                        raise _malformed("bytes after the trailers")
                    self._buffer.clear()
                    break
        return bytes(out)

    def finish(self) -> None:
        if self._state != "done":
            raise S3Error("IncompleteBody", "The body ended before the aws-chunked framing was complete.")

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_LINE:
                raise _malformed("a line is too long")
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _start_chunk(self, line: bytes) -> None:
        size_text = line.split(b";", 1)[0]
        if not _HEX_SIZE.fullmatch(size_text):
            raise _malformed(f"bad chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if size > MAX_CHUNK:
            raise _malformed("a chunk is too large")
        if size == 0:
            self._state = "trailers"
        else:
            self._remaining = size
            self._state = "data"

    def _trailer(self, line: bytes) -> None:
        if not line:
            self._state = "done"
            return
        self._trailer_bytes += len(line)
        if self._trailer_bytes > MAX_TRAILERS:
            raise _malformed("the trailers are too long")
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise _malformed("a trailer line has no colon")
        self.trailers[name.strip().lower()] = value.strip()
