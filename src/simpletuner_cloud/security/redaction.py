"""Logging that can never print a token: a filter that masks Replicate (`r8_...`) and Hugging Face
(`hf_...`) tokens, admin tokens, AWS keys and Authorization headers in every record, and every secret
this server holds (the secret files register their values here, whatever their shape). `secret_value`
applies the same to one value of a document (a config shown by the API)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

MASK = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization / cookie headers, whatever the scheme
    (
        re.compile(
            r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer|token|basic|aws4-hmac-sha256)?\s*[^\s'\",}]+"
        ),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + MASK),
    (re.compile(r"r8_[A-Za-z0-9_-]{8,}"), MASK),
    (re.compile(r"hf_[A-Za-z0-9]{8,}"), MASK),
    (re.compile(r"(?<![A-Za-z0-9])st_[A-Za-z0-9_-]{16,}"), MASK),  # not `test_start_...`
    (re.compile(r"whsec_[A-Za-z0-9+/=]{8,}"), MASK),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),  # AWS access key ids
    # AWS-style keys in key=value / JSON form
    (re.compile(r"(?i)((?:aws_)?secret(?:_access)?_key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1" + MASK),
    (re.compile(r"(?i)(s3_secret_key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1" + MASK),
    # Access key ids under their name (an S3-compatible store's need not look like AWS's)
    (
        re.compile(r"(?i)((?:aws_|s3_)?access_key(?:_id)?['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)((?:api_)?token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]{8,}"), r"\1" + MASK),
    (re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1" + MASK),
]


# Each pattern above needs one of these (a word, with the `:`/`=` after it for the key=value ones):
# text with none of them has nothing to mask, and is most text (a log line, a header value, a trainer
# log that says "tokenizer" on every line), so one search spares it the twelve. A property test holds
# this list to the patterns.
_NEEDS = re.compile(
    r"(?i)authorization|bearer\s|r8_|hf_|st_|whsec_|akia|asia|secret(?:_access)?_key['\"]?\s*[:=]"
    r"|access_key(?:_id)?['\"]?\s*[:=]|token['\"]?\s*[:=]"
)
# The same, case-sensitive, for lowered text: scanning a long log for every match is ~15x faster so.
# (The patterns' words are ASCII, so lowering A-Z only is enough, and keeps every offset.)
_NEEDS_LOWER = re.compile(_NEEDS.pattern.removeprefix("(?i)"))
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


# The values of the secrets this process has saved or read (an S3 secret key has no shape a pattern
# could know), by holder (a secret file's path), so a value saved under two references stays known until
# both are deleted. Shorter values are left to the patterns: a short password would mask common words.
MIN_KNOWN_SECRET = 12
# A log stored as it grows may end inside a secret (the rest comes in the next chunk, masked from the
# line's start): a text that ends in this much of one or more has that end blanked too.
MIN_CUT_SECRET = 4
_held: dict[str, frozenset[str]] = {}
_known: tuple[str, ...] = ()  # the union, longest first (a secret that contains another is masked whole)
_held_lock = threading.Lock()


def hold_secrets(holder: str, values: Iterable[str]) -> None:
    """What `holder` holds now (replacing what it held): its values of MIN_KNOWN_SECRET characters or
    more are masked wherever masking runs, until `release_secrets(holder)`."""
    kept = frozenset(v for v in (value.strip() for value in values) if len(v) >= MIN_KNOWN_SECRET)
    with _held_lock:
        if _held.get(holder, frozenset()) == kept:
            return
        if kept:
            _held[holder] = kept
        else:
            _held.pop(holder, None)
        _rebuild()


def release_secrets(holder: str) -> None:
    with _held_lock:
        if _held.pop(holder, None) is not None:
            _rebuild()


def known_secrets() -> tuple[str, ...]:
    return _known


def forget_known_secrets() -> None:
    """Release every holder (a test's clean slate)."""
    with _held_lock:
        _held.clear()
        _rebuild()


def _rebuild() -> None:
    global _known
    _known = tuple(sorted(set().union(*_held.values()), key=lambda value: (-len(value), value)))


def _replace_known(text: str, masked: str | None) -> str:
    """`text` with each known secret replaced by `masked` (None: one `*` per character). A substring
    search per value costs ~0.2 ms for 2 MB: cheaper than one alternation regex over the same text."""
    for value in _known:
        if value in text:
            text = text.replace(value, "*" * len(value) if masked is None else masked)
    return text


def _blank_cut_known(text: str) -> str:
    """`text` with an end that is the start of a known secret (at least MIN_CUT_SECRET characters of
    it) blanked: the chunk stored now must not hold what the next chunk's masking will hide."""
    cut = 0
    for value in _known:
        start = max(0, len(text) - len(value) + 1)  # a whole one is masked already
        while (found := text.find(value[:MIN_CUT_SECRET], start)) >= 0:
            if value.startswith(text[found:]):
                cut = max(cut, len(text) - found)
                break
            start = found + 1
    return text[: len(text) - cut] + "*" * cut if cut else text


def redact(text: str) -> str:
    text = _replace_known(text, MASK)
    if not _NEEDS.search(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _blank(match: re.Match[str]) -> str:
    """The match with its secret part (all of it, or what follows the key in group 1) as asterisks."""
    text = match.group(0)
    keep = len(match.group(1) or "") if match.re.groups else 0
    return text[:keep] + "*" * (len(text) - keep)


def mask(text: str) -> str:
    """`redact` that keeps the length: every secret character becomes `*`, so offsets into text
    stored masked (a job's log, read from Replicate as one growing text) still line up. Only the lines
    the quick check finds are searched (a secret never spans lines): a long log costs one scan. The
    secrets this server holds are blanked first, wherever they are and whatever surrounds them."""
    text = _blank_cut_known(_replace_known(text, None))
    pieces: list[str] = []
    done = 0  # text[:done] is in `pieces`
    lowered = text.lower()
    if len(lowered) != len(text):  # a letter such as `İ` lowers to two: lower A-Z only (slower)
        lowered = text.translate(_ASCII_LOWER)
    for found in _NEEDS_LOWER.finditer(lowered):  # the same length as `text`: the same offsets
        if found.start() < done:
            continue  # on a line masked already
        start = text.rfind("\n", 0, found.start()) + 1
        stop = text.find("\n", found.end())
        stop = len(text) if stop < 0 else stop + 1
        line = text[start:stop]
        for pattern, _ in _PATTERNS:
            line = pattern.sub(_blank, line)
        pieces += [text[done:start], line]
        done = stop
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


def masked_from(text: str, offset: int) -> str:
    """`mask(text)[offset:]`, reading only the lines from the one `offset` falls in (a secret never
    spans lines), so appending to a long log costs what is new, not the whole log each time."""
    start = text.rfind("\n", 0, offset) + 1
    return mask(text[start:])[offset - start :]


# Token shapes that give a value away whatever key holds it (the key-based log patterns above need the
# `key=value` text around them, which a parsed document does not have).
_TOKEN_SHAPES = re.compile(
    r"r8_[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|(?<![A-Za-z0-9])st_[A-Za-z0-9_-]{16,}"
    r"|whsec_[A-Za-z0-9+/=]{8,}|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
)
_AWS_SECRET = re.compile(r"[A-Za-z0-9/+=]{40}")  # the shape of an AWS secret access key


def secret_value(key: str, value: str) -> bool:
    """Whether a document's string value gives a credential away: a token shape or a secret this
    server holds anywhere in it, or an AWS-secret-shaped value (40 base64 characters) under a key
    that mentions a secret."""
    if _TOKEN_SHAPES.search(value) or any(known in value for known in _known):
        return True
    return "secret" in key.lower() and _AWS_SECRET.fullmatch(value.strip()) is not None


_REDACTED_MARK = "_simpletuner_redacted"


def _redact_message(record: logging.LogRecord) -> None:
    """Render the message once, mask it, and drop the args so no handler re-renders the secret.
    Marked, so the record factory and every handler's filter do this once per record, not each."""
    if getattr(record, _REDACTED_MARK, False):
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not break logging
        message = str(record.msg)
    record.msg = redact(message)
    record.args = None
    setattr(record, _REDACTED_MARK, True)


class RedactingFilter(logging.Filter):
    """Masks the message (unless the record factory already did) and any traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_message(record)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_factory_installed = False


def _install_record_factory() -> None:
    """Redact at record creation, so even a handler we never saw (a test's, a library's) gets clean text."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)  # type: ignore[arg-type]
        _redact_message(record)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    if not any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    install_redaction()


def install_redaction() -> None:
    """Redact every record at creation, and attach the filter (which also masks tracebacks) to every
    handler we know of, including uvicorn's and httpx's."""
    _install_record_factory()
    redactor = RedactingFilter()
    for name in (
        "",
        "uvicorn",
        "uvicorn.error",
        "uvicorn.access",
        "httpx",
        "httpcore",
        "replicate",
        "botocore",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(redactor)
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(redactor)
