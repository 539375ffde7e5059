"""The field types of the provider settings, each checked as strictly as the code that later uses it
(httpx for proxies, Replicate for model refs, `Decimal` for money), so a value saved with 200 can never
turn another route into a 500. Messages are sentences that never echo a huge input back."""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import AfterValidator, Field

WEBHOOK_PATH = "/api/webhooks/replicate"
MAX_URL_LENGTH = 2048
# Replicate's owner and model names are short slugs; nothing real comes near this.
MAX_MODEL_REF_LENGTH = 200
MAX_COST_LIMIT_USD = Decimal(1_000_000)
USD_DECIMAL_PLACES = 6  # what billing answers carry (sub-cent prices per second)
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
DEFAULT_PORTS = {"http": 80, "https": 443}
# Replicate's owner and model names: letters, digits, `-`, `_`, `.`, beginning and ending with a letter
# or digit (`a/b...` is accepted by nothing at Replicate; it only failed later, at submit).
_NAME = r"[a-z0-9](?:[a-z0-9_.-]*[a-z0-9])?"
_MODEL_REF = re.compile(rf"^{_NAME}/{_NAME}$", re.IGNORECASE)
_VERSION_ID = re.compile(r"^[0-9a-f]{64}$")
_HOST_NAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?:\.(?!-)[A-Za-z0-9-]{1,63})*\.?$")


def shown(value: str, limit: int = 60) -> str:
    """A value quoted in a message, cut so a megabyte of input never comes back in the answer."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def ip_or_network(value: str) -> str:
    """An IPv4/IPv6 address or CIDR, normalised (`34.82.1.2/16` -> `34.82.0.0/16`)."""
    text = value.strip()
    try:
        return (
            str(ipaddress.ip_network(text, strict=False)) if "/" in text else str(ipaddress.ip_address(text))
        )
    except ValueError:
        raise ValueError(f"{shown(value)} is not an IPv4/IPv6 address or CIDR range") from None


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST_NAME.match(host))
    return True


def url_parts(value: str, schemes: tuple[str, ...], expected: str) -> SplitResult:
    """Split a URL after refusing what `urlsplit` would silently drop or misread: whitespace and
    control characters (it deletes CR, LF and tabs), non-ASCII text, a bad host or port."""
    text = value.strip()
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"must be at most {MAX_URL_LENGTH} characters long")
    if any(c.isspace() or not c.isprintable() for c in text) or not text.isascii():
        raise ValueError("must not contain spaces, line breaks, control or non-ASCII characters")
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # `http://[::1/`: an unclosed IPv6 bracket
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be {expected}")
    if not _valid_host(parts.hostname):
        raise ValueError(f"has an invalid host name {shown(parts.hostname)}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port (it must be a number from 1 to 65535)") from None
    if port == 0:
        raise ValueError("has an invalid port (it must be a number from 1 to 65535)")
    try:  # what httpx will send to later: a bad IDNA label (`xn--zz`) or IPv4 (`999.1.1.1`) fails here
        httpx.Request("POST", httpx.URL(text))
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"is not a usable URL: {str(exc)[:120] or type(exc).__name__}") from None
    return parts


def public_base_url(value: str) -> str:
    parts = url_parts(value, ("http", "https"), "an http(s) URL such as https://training.example.com")
    if parts.username or parts.password:  # it would be shown in answers and sent with every job
        raise ValueError("must not contain a user name or password")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"must have no path or query: the webhook path {WEBHOOK_PATH} is added automatically"
        )
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValueError(
            "must use https: Replicate delivers webhooks over HTTPS only (http is accepted for this "
            "machine alone: localhost, 127.0.0.1, [::1]); a tunnel such as `ngrok http 8080` gives an "
            "https URL"
        )
    return normalised_base_url(parts.scheme, host, parts.port)


def job_webhook_url(value: str) -> str:
    """A job's own `webhook_url` (SimpleTuner's field): an absolute http(s) URL with a host, checked
    before anything is reserved; a path and query are kept (no path gets the webhook path)."""
    url_parts(value, ("http", "https"), "an absolute http(s) URL such as https://hooks.example.com/st")
    return value.strip()


def is_loopback_host(host: str) -> bool:
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def normalised_base_url(scheme: str, host: str, port: int | None) -> str:
    """Lower case, no trailing dot, no default port, IPv6 compressed in brackets: one spelling per URL."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        shown_host = host.lower()
    else:
        shown_host = f"[{address.compressed}]" if address.version == 6 else str(address)
    default = DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{shown_host}" + (f":{port}" if port is not None and port != default else "")


def proxy_address(value: str) -> str:
    """`scheme://[user[:password]@]host[:port]`, accepted only if httpx can build a proxy from it."""
    parts = url_parts(value, PROXY_SCHEMES, "an http://, https:// or socks5:// proxy URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be scheme://[user:password@]host:port, with no path or query")
    text = value.strip()
    try:
        proxy = httpx.Proxy(text)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"is not a proxy URL httpx can use ({exc})") from None
    if proxy.url.host.lower() != (parts.hostname or "").lower():  # an `@` in the password, say
        raise ValueError("is ambiguous: percent-encode `@`, `:` and `/` in the user name and password")
    return text


def model_ref(value: str) -> str:
    text = value.strip()
    if len(text) > MAX_MODEL_REF_LENGTH:
        raise ValueError(f"must be at most {MAX_MODEL_REF_LENGTH} characters long (owner/name)")
    if not _MODEL_REF.match(text):
        raise ValueError(
            "must be owner/name (letters, digits, `-`, `_` and `.`, each part beginning and ending with "
            "a letter or digit), e.g. simpletuner/advanced-trainer"
        )
    return text


def version_id(value: str) -> str:
    if not _VERSION_ID.match(value.strip().lower()):
        raise ValueError("must be a 64-character hex version id (or null to use the latest)")
    return value.strip().lower()


IpOrNetwork = Annotated[str, AfterValidator(ip_or_network)]
PublicUrl = Annotated[str, AfterValidator(public_base_url)]
JobWebhookUrl = Annotated[str, AfterValidator(job_webhook_url)]
ProxyUrl = Annotated[str, AfterValidator(proxy_address)]
ModelRef = Annotated[str, AfterValidator(model_ref)]
VersionId = Annotated[str, AfterValidator(version_id)]
# Money: a JSON number or a decimal string, kept exact; finite, positive and bounded, so every sum and
# rounding later (billing) works.
UsdAmount = Annotated[
    Decimal,
    Field(
        gt=0,
        le=MAX_COST_LIMIT_USD,
        decimal_places=USD_DECIMAL_PLACES,
        allow_inf_nan=False,
        description='USD per period: a number or a decimal string, e.g. 50 or "12.50"',
    ),
]
HardwareId = Annotated[str, Field(max_length=64)]
Period = Literal["daily", "weekly", "monthly"]


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {shown(value)}; use an IANA name like Europe/Lisbon") from None
    return value


TimeZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_time_zone)]
Action = Literal["warn", "block"]
Consent = Literal["ask", "allow", "deny"]
