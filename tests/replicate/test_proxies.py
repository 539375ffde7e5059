"""Which proxy carries a request: the setting, then the environment by scheme; NO_PROXY bypasses."""

from __future__ import annotations

import httpx
import pytest

from simpletuner_cloud.replicate.proxies import bypasses, mask_proxy_url, proxy_config


def test_setting_wins_over_environment() -> None:
    config = proxy_config("http://setting:3128", {"HTTPS_PROXY": "http://env:1"})
    assert config.for_url(httpx.URL("https://api.replicate.com/v1")) == "http://setting:3128"
    assert config.for_url(httpx.URL("http://127.0.0.1:9/v1")) == "http://setting:3128"


def test_environment_by_scheme_lowercase_first() -> None:
    environ = {
        "HTTPS_PROXY": "http://upper:1",
        "https_proxy": "http://lower:2",
        "HTTP_PROXY": "http://plain:3",
    }
    config = proxy_config(None, environ)
    assert config.for_url(httpx.URL("https://api.replicate.com")) == "http://lower:2"
    assert config.for_url(httpx.URL("http://api.replicate.com")) == "http://plain:3"
    assert proxy_config(None, {"ALL_PROXY": "http://all:4"}).https == "http://all:4"
    assert not proxy_config(None, {}).enabled


@pytest.mark.parametrize(
    ("host", "port", "entries", "expected"),
    [
        ("api.replicate.com", 443, ("replicate.com",), True),
        ("api.replicate.com", 443, (".replicate.com",), True),
        ("api.replicate.com", 443, ("*.replicate.com",), True),
        ("notreplicate.com", 443, ("replicate.com",), False),
        ("anything", 80, ("*",), True),
        ("127.0.0.1", 8080, ("127.0.0.0/8",), True),
        ("127.0.0.1", 8080, ("127.0.0.1:9090",), False),
        ("127.0.0.1", 8080, ("127.0.0.1:8080",), True),
        ("::1", 8080, ("[::1]:8080",), True),
        ("10.1.2.3", 80, ("localhost",), False),
    ],
)
def test_no_proxy(host: str, port: int, entries: tuple[str, ...], expected: bool) -> None:
    assert bypasses(host, port, entries) is expected


def test_no_proxy_applies_to_the_setting_too() -> None:
    config = proxy_config("http://setting:3128", {"NO_PROXY": "127.0.0.1"})
    assert config.for_url(httpx.URL("http://127.0.0.1:5/v1")) is None


def test_proxy_passwords_are_masked() -> None:
    assert mask_proxy_url("http://bob:s3cret@proxy:3128") == "http://bob:***@proxy:3128"
    assert mask_proxy_url("http://proxy:3128") == "http://proxy:3128"
    assert mask_proxy_url(None) is None
