"""Byte layout of the zip records we write (PKWARE APPNOTE 6.3), and their sizes, so the archive size is
known exactly before any data is read. Zip64 fields appear only when a value does not fit in 32 bits."""

from __future__ import annotations

import struct

STORED = 0
DEFLATED = 8
# Module-level so a test can lower them and exercise the zip64 records with tiny files.
ZIP64_LIMIT = 0xFFFFFFFF
ZIP_COUNT_LIMIT = 0xFFFF

DOS_TIME = 0  # 00:00:00
DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, the earliest date zip can hold
UTF8_FLAG = 0x0800
MADE_BY_UNIX = 3 << 8
FILE_ATTRIBUTES = (0o100644 & 0xFFFF) << 16  # a regular rw-r--r-- file

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_ZIP64_END = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_END = struct.Struct("<IHHHHIIH")


def _version(zip64: bool) -> int:
    return 45 if zip64 else 20


def _local_zip64(size: int, compressed: int) -> bool:
    return size >= ZIP64_LIMIT or compressed >= ZIP64_LIMIT


def local_header_size(name: bytes, size: int, compressed: int) -> int:
    return _LOCAL.size + len(name) + (20 if _local_zip64(size, compressed) else 0)


def local_header(name: bytes, method: int, crc: int, size: int, compressed: int) -> bytes:
    zip64 = _local_zip64(size, compressed)
    extra = struct.pack("<HHQQ", 0x0001, 16, size, compressed) if zip64 else b""
    return (
        _LOCAL.pack(
            0x04034B50,
            _version(zip64),
            UTF8_FLAG,
            method,
            DOS_TIME,
            DOS_DATE,
            crc,
            0xFFFFFFFF if zip64 else compressed,
            0xFFFFFFFF if zip64 else size,
            len(name),
            len(extra),
        )
        + name
        + extra
    )


def _central_extra(size: int, compressed: int, offset: int) -> list[int]:
    # APPNOTE order: original size, compressed size, local header offset; only those that overflow.
    return [value for value in (size, compressed, offset) if value >= ZIP64_LIMIT]


def central_header_size(name: bytes, size: int, compressed: int, offset: int) -> int:
    fields = _central_extra(size, compressed, offset)
    return _CENTRAL.size + len(name) + (4 + 8 * len(fields) if fields else 0)


def central_header(name: bytes, method: int, crc: int, size: int, compressed: int, offset: int) -> bytes:
    fields = _central_extra(size, compressed, offset)
    extra = struct.pack(f"<HH{len(fields)}Q", 0x0001, 8 * len(fields), *fields) if fields else b""
    return (
        _CENTRAL.pack(
            0x02014B50,
            MADE_BY_UNIX | _version(bool(fields)),
            _version(bool(fields)),
            UTF8_FLAG,
            method,
            DOS_TIME,
            DOS_DATE,
            crc,
            compressed if compressed < ZIP64_LIMIT else 0xFFFFFFFF,
            size if size < ZIP64_LIMIT else 0xFFFFFFFF,
            len(name),
            len(extra),
            0,  # comment length
            0,  # disk number
            0,  # internal attributes
            FILE_ATTRIBUTES,
            offset if offset < ZIP64_LIMIT else 0xFFFFFFFF,
        )
        + name
        + extra
    )


def _end_zip64(count: int, central_size: int, central_offset: int) -> bool:
    return count >= ZIP_COUNT_LIMIT or central_size >= ZIP64_LIMIT or central_offset >= ZIP64_LIMIT


def end_records_size(count: int, central_size: int, central_offset: int) -> int:
    zip64 = _end_zip64(count, central_size, central_offset)
    return _END.size + (_ZIP64_END.size + _ZIP64_LOCATOR.size if zip64 else 0)


def end_records(count: int, central_size: int, central_offset: int) -> bytes:
    """The end-of-central-directory record, preceded by the zip64 record and locator when needed."""
    records = b""
    if _end_zip64(count, central_size, central_offset):
        zip64_offset = central_offset + central_size
        records += _ZIP64_END.pack(
            0x06064B50, _ZIP64_END.size - 12, MADE_BY_UNIX | 45, 45, 0, 0, count, count, central_size,
            central_offset,
        )  # fmt: skip
        records += _ZIP64_LOCATOR.pack(0x07064B50, 0, zip64_offset, 1)
        count_field = 0xFFFF if count >= ZIP_COUNT_LIMIT else count
        size_field = 0xFFFFFFFF if central_size >= ZIP64_LIMIT else central_size
        offset_field = 0xFFFFFFFF if central_offset >= ZIP64_LIMIT else central_offset
    else:
        count_field, size_field, offset_field = count, central_size, central_offset
    return records + _END.pack(0x06054B50, 0, 0, count_field, count_field, size_field, offset_field, 0)
