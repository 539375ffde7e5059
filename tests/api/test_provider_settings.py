"""`GET/PUT /api/cloud/providers/replicate`: defaults, partial updates, validation naming the
field, and the seed's curl example run verbatim with the real curl binary against a live server."""

from __future__ import annotations

import json
import stat
import subprocess
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simpletuner_cloud.api.app import create_app
from simpletuner_cloud.replicate.retries import RetryPolicy
from simpletuner_cloud.services.provider import ProviderRuntime
from simpletuner_cloud.services.provider_settings import load_replicate_settings
from simpletuner_cloud.settings import load_settings
from simpletuner_cloud.store.provider_settings import get_provider_settings, save_provider_settings
from tests.support.live_server import free_port, live_server

# The seed's example (REPLICATE.pt-BR.md, "Exemplo de configuracao de allowlist de IP"), verbatim.
SEED_CURL = """curl -X PUT http://localhost:8080/api/cloud/providers/replicate \\
  -H "Content-Type: application/json" \\
  -d '{
    "webhook_allowed_ips": ["34.82.0.0/16", "35.185.0.0/16"]
  }'"""

COST_LIMIT_EXTRAS = {"cancel_running_at_limit": False, "cancel_on": "accrued", "time_zone": None}
DEFAULTS: dict[str, Any] = {
    "model": None,
    "version": None,
    "hardware": "l40s",
    "public_url": None,
    "webhook_allowed_ips": [],
    "trusted_proxies": [],
    "require_signature": True,
    "cost_limit": {
        "enabled": False,
        "amount": None,
        "period": "monthly",
        "action": "warn",
        **COST_LIMIT_EXTRAS,
    },
    "http_timeout": 30.0,
    "proxy_url": None,
    "data_consent": "ask",
    "derived": {"trainer_model": "simpletuner/advanced-trainer", "webhook_url": None},
    "warnings": [],
}
URL = "/api/cloud/providers/replicate"


async def test_defaults(client: httpx.AsyncClient) -> None:
    response = await client.get(URL)
    assert response.status_code == 200
    assert response.json() == DEFAULTS


async def test_partial_update_keeps_other_values(client: httpx.AsyncClient) -> None:
    first = await client.put(
        URL,
        json={
            "hardware": "a100",
            "public_url": "https://training.example.com/",
            "trusted_proxies": ["10.0.0.1", "fd00::/8"],
            "cost_limit": {"enabled": True, "amount": 50, "period": "weekly"},
            "data_consent": "allow",
        },
    )
    assert first.status_code == 200
    second = await client.put(URL, json={"require_signature": False, "cost_limit": {"action": "block"}})
    assert second.json() == {
        **DEFAULTS,
        "hardware": "a100",
        "public_url": "https://training.example.com",
        "trusted_proxies": ["10.0.0.1", "fd00::/8"],
        "require_signature": False,
        "cost_limit": {
            "enabled": True,
            "amount": 50.0,
            "period": "weekly",
            "action": "block",
            **COST_LIMIT_EXTRAS,
        },
        "data_consent": "allow",
        "derived": {
            "trainer_model": "simpletuner/advanced-trainer-a100",
            "webhook_url": "https://training.example.com/api/webhooks/replicate",
        },
    }
    assert (await client.get(URL)).json() == second.json()


async def test_null_resets_to_the_default(client: httpx.AsyncClient) -> None:
    await client.put(URL, json={"hardware": "a100", "version": "A" * 64, "http_timeout": 5})
    answer = (await client.put(URL, json={"hardware": None, "version": None})).json()
    assert (answer["hardware"], answer["version"], answer["http_timeout"]) == ("l40s", None, 5.0)


@pytest.mark.parametrize("given", ["A100 (80GB)", "gpu-a100-large", " A100 "])
async def test_hardware_is_taken_as_submit_takes_it_and_saved_as_its_id(
    client: httpx.AsyncClient, given: str
) -> None:
    answer = await client.put(URL, json={"hardware": given})
    assert answer.status_code == 200, answer.text
    assert answer.json()["hardware"] == "a100"
    assert answer.json()["derived"]["trainer_model"] == "simpletuner/advanced-trainer-a100"
    assert (await client.get(URL)).json()["hardware"] == "a100"


async def test_ips_and_cidrs_are_normalised(client: httpx.AsyncClient) -> None:
    answer = await client.put(
        URL, json={"webhook_allowed_ips": ["34.82.7.7/16", " 2001:DB8::1 ", "35.185.0.1"]}
    )
    assert answer.json()["webhook_allowed_ips"] == ["34.82.0.0/16", "2001:db8::1", "35.185.0.1"]


def _error(response: httpx.Response) -> tuple[int, str, list[str]]:
    error = response.json()["error"]
    fields = error["details"]["fields"]
    return response.status_code, error["message"], [f["field"] for f in fields]


async def test_validation_errors_name_the_field(client: httpx.AsyncClient) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            {"webhook_allowed_ips": ["34.82.0.0/16", "not-an-ip"]},
            "webhook_allowed_ips.1",
            "'not-an-ip' is not",
        ),
        ({"trusted_proxies": ["10.0.0.0/33"]}, "trusted_proxies.0", "not an IPv4/IPv6"),
        ({"public_url": "https://example.com/api/webhooks/replicate"}, "public_url", "no path or query"),
        ({"public_url": "ftp://example.com"}, "public_url", "http(s) URL"),
        ({"public_url": "https://bob:pw@example.com"}, "public_url", "user name or password"),
        ({"version": "latest"}, "version", "64-character hex"),
        ({"http_timeout": 0}, "http_timeout", "greater than 0"),
        ({"proxy_url": "proxy.local:3128"}, "proxy_url", "proxy URL"),
        ({"data_consent": "maybe"}, "data_consent", "'ask', 'allow' or 'deny'"),
        ({"cost_limit": {"period": "yearly"}}, "cost_limit.period", "daily"),
        ({"hardware": "h100"}, "hardware", "unknown hardware 'h100'; choose one of l40s, a100"),
        ({"cost_limit": {"enabled": True}}, "cost_limit", "needs an `amount`"),
        ({"webhook_alowed_ips": []}, "webhook_alowed_ips", "Extra inputs are not permitted"),
    ]
    for body, field, words in cases:
        status, message, fields = _error(await client.put(URL, json=body))
        assert status == 422, body
        assert field in fields, (body, fields)
        assert f"`{field}`" in message and words in message, message
    assert (await client.get(URL)).json() == DEFAULTS  # nothing was saved


async def test_proxy_password_is_masked_and_round_trips(client: httpx.AsyncClient, app: FastAPI) -> None:
    secret = "http://bob:s3cret@proxy.internal:3128"
    answer = (await client.put(URL, json={"proxy_url": secret})).json()
    assert answer["proxy_url"] == "http://bob:***@proxy.internal:3128"
    again = await client.put(URL, json=answer)  # GET -> edit -> PUT, derived included
    assert again.status_code == 200
    assert "s3cret" not in again.text
    async with app.state.database.session() as session:
        assert (await load_replicate_settings(session, app.state.settings)).proxy_url == secret


async def test_json_is_required(client: httpx.AsyncClient) -> None:
    response = await client.put(URL, content=b"webhook_allowed_ips=1.2.3.4")
    assert response.status_code == 415


@pytest.mark.parametrize("peer", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("host", ["localhost:8080", "127.0.0.1:8080", "[::1]:8080"])
async def test_the_seed_request_is_local_over_either_loopback(app: FastAPI, peer: str, host: str) -> None:
    """curl resolves `localhost` to ::1 and 127.0.0.1 and uses whichever the server listens on; both,
    with any loopback Host header, are the local user (no login)."""
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
        response = await http.put(
            URL,
            content=b'{"webhook_allowed_ips": ["34.82.0.0/16", "35.185.0.0/16"]}',
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["webhook_allowed_ips"] == ["34.82.0.0/16", "35.185.0.0/16"]


def test_seed_curl_example_verbatim() -> None:
    port = free_port()
    app = create_app(load_settings(port=port))
    with live_server(app, port=port) as base, httpx.Client(base_url=base, trust_env=False) as http:
        http.put(
            URL, json={"hardware": "a100", "public_url": "https://training.example.com"}
        ).raise_for_status()
        command = SEED_CURL.replace("localhost:8080", f"localhost:{port}")
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, done.stderr
        assert '"webhook_allowed_ips":["34.82.0.0/16","35.185.0.0/16"]' in done.stdout
        after = http.get(URL).json()
    assert after == {
        **DEFAULTS,
        "hardware": "a100",
        "public_url": "https://training.example.com",
        "webhook_allowed_ips": ["34.82.0.0/16", "35.185.0.0/16"],
        "derived": {
            "trainer_model": "simpletuner/advanced-trainer-a100",
            "webhook_url": "https://training.example.com/api/webhooks/replicate",
        },
    }


# Each of these was saved with 200 and then turned other routes into 500s (validate, system-status,
# billing), or bloated every answer; each is refused at PUT, naming the field, and nothing is saved.
BREAKING_VALUES: list[tuple[str, str, str]] = [
    ('{"proxy_url": "http://a\\r\\nb:3128"}', "proxy_url", "must not contain spaces, line breaks"),
    ('{"proxy_url": "http://proxy:3128/\\nx"}', "proxy_url", "must not contain spaces, line breaks"),
    ('{"proxy_url": "http://pro xy:3128"}', "proxy_url", "must not contain spaces"),
    ('{"proxy_url": "http://proxy:99999"}', "proxy_url", "invalid port"),
    ('{"proxy_url": "socks5://u:p@[::1]:x"}', "proxy_url", "invalid port"),
    ('{"proxy_url": "http://proxy:3128/path"}', "proxy_url", "with no path or query"),
    ('{"public_url": "https://a\\r\\nb.example.com"}', "public_url", "line breaks"),
    ('{"public_url": "https://example.com:0"}', "public_url", "invalid port"),
    # accepted, then the self-test and every `delivery: local` job failed in httpx
    ('{"public_url": "https://xn--zz"}', "public_url", "is not a usable URL: Invalid A-label"),
    ('{"public_url": "https://999.999.999.999"}', "public_url", "is not a usable URL: Invalid IPv4"),
    ('{"public_url": "http://[::1"}', "public_url", "is not a valid URL"),
    ('{"proxy_url": "http://xn--zz:3128"}', "proxy_url", "is not a usable URL"),
    ('{"cost_limit": {"enabled": true, "amount": 1e308}}', "cost_limit.amount", "less than or equal to"),
    ('{"cost_limit": {"enabled": true, "amount": 1e400}}', "cost_limit.amount", "finite number"),
    ('{"cost_limit": {"enabled": true, "amount": NaN}}', "cost_limit.amount", "finite number"),
    ('{"cost_limit": {"enabled": true, "amount": -5}}', "cost_limit.amount", "greater than 0"),
    ('{"cost_limit": {"amount": "a lot"}}', "cost_limit.amount", "valid decimal"),
    ('{"http_timeout": NaN}', "http_timeout", "finite number"),
    ('{"model": "a/' + "b" * 70_000 + '"}', "model", "at most 200 characters long"),
    ('{"model": "advanced-trainer"}', "model", "must be owner/name"),
    ('{"model": "A/B..."}', "model", "must be owner/name"),  # accepted, then every submit was a 404
    ('{"model": "-a/b"}', "model", "must be owner/name"),
    ('{"hardware": "' + "h" * 70_000 + '"}', "hardware", "at most 64 characters"),
]


@pytest.mark.parametrize(("body", "field", "words"), BREAKING_VALUES, ids=lambda v: str(v)[:40])
async def test_values_that_broke_other_routes_are_refused_at_put(
    client: httpx.AsyncClient, body: str, field: str, words: str
) -> None:
    response = await client.put(URL, content=body, headers={"Content-Type": "application/json"})
    status, message, fields = _error(response)
    assert (status, fields[0]) == (422, field), response.text[:300]
    assert message.startswith(f"Invalid value for `{field}`: ") and words in message, message
    assert "Value error" not in response.text
    assert len(response.content) < 2_000  # a huge value is never echoed back
    assert (await client.get(URL)).json() == DEFAULTS


async def test_money_is_a_decimal_number_or_string(client: httpx.AsyncClient, app: FastAPI) -> None:
    """Sent as a number or a decimal string, kept exact (stored as a decimal string), answered as a
    JSON number like every amount of money in the API."""
    answer = await client.put(URL, json={"cost_limit": {"enabled": True, "amount": "12.345678"}})
    assert answer.json()["cost_limit"] == {"enabled": True, "amount": 12.345678, "period": "monthly",
                                           "action": "warn", **COST_LIMIT_EXTRAS}  # fmt: skip
    billing = (await client.get(f"{URL}/billing")).json()["cost_limit"]
    assert (billing["amount"], billing["remaining"], billing["state"]) == (12.345678, 12.345678, "ok")
    async with app.state.database.session() as session:
        stored = await get_provider_settings(session, "replicate")
        loaded = await load_replicate_settings(session, app.state.settings)
    assert stored["cost_limit"]["amount"] == "12.345678"
    assert loaded.cost_limit.amount == Decimal("12.345678")
    too_precise = await client.put(URL, json={"cost_limit": {"amount": "0.0000001"}})
    assert _error(too_precise)[2] == ["cost_limit.amount"]


async def test_stored_bad_values_are_ignored_with_a_warning_not_a_crash(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    """Values saved before the checks existed: every reader still answers, the settings answer says
    what was ignored, and saving anything rewrites the row without them."""
    async with app.state.database.session() as session:
        await save_provider_settings(
            session,
            "replicate",
            {
                "proxy_url": "http://a\r\nb:3128",
                "cost_limit": {"enabled": True, "amount": 1e308, "period": "weekly"},
                "model": "a/" + "b" * 70_000,
                "hardware": "a100",
            },
        )
        await session.commit()
    for path in ("/api/cloud/system-status", f"{URL}/billing", "/api/cloud/providers"):
        assert (await client.get(path)).status_code == 200, path
    assert (await client.get(f"{URL}/validate")).json()["error"]["code"] == "token_missing"
    answer = (await client.get(URL)).json()
    assert answer == {
        **DEFAULTS,
        "hardware": "a100",
        "cost_limit": {
            "enabled": False,
            "amount": None,
            "period": "monthly",
            "action": "warn",
            **COST_LIMIT_EXTRAS,
        },
        "derived": {"trainer_model": "simpletuner/advanced-trainer-a100", "webhook_url": None},
        "warnings": [
            "The saved value of `model` was ignored (must be at most 200 characters long (owner/name)); "
            "the default is used until you save a new one.",
            "The saved value of `cost_limit.amount` was ignored (Input should be less than or equal to "
            "1000000); the default is used until you save a new one.",
            "The saved value of `proxy_url` was ignored (must not contain spaces, line breaks, control or "
            "non-ASCII characters); the default is used until you save a new one.",
            "The saved value of `cost_limit` was ignored (an enabled cost limit needs an `amount` in USD); "
            "the default is used until you save a new one.",
        ],
    }
    saved = (await client.put(URL, json={"data_consent": "allow"})).json()
    assert (saved["warnings"], saved["model"], saved["proxy_url"]) == ([], None, None)


async def test_the_proxy_password_lives_in_the_secret_store(client: httpx.AsyncClient, app: FastAPI) -> None:
    """The row keeps the URL without the password and a reference; the password is in a 0600 file in a
    0700 folder, and in no byte of the database, its WAL or shared-memory file."""
    password = "pw-Zq81xK7vT"
    answer = await client.put(URL, json={"proxy_url": f"http://bob:{password}@proxy.internal:3128"})
    assert answer.json()["proxy_url"] == "http://bob:***@proxy.internal:3128"
    async with app.state.database.session() as session:
        row = await get_provider_settings(session, "replicate")
        loaded = await load_replicate_settings(session, app.state.settings)
    assert row["proxy_url"] == "http://bob@proxy.internal:3128"
    assert loaded.proxy_url == f"http://bob:{password}@proxy.internal:3128"  # what the client is built with
    secrets_dir = app.state.settings.cloud_dir / "secrets"
    (secret_file,) = secrets_dir.iterdir()
    assert secret_file.name == row["proxy_password_ref"]
    assert secret_file.read_text() == password
    assert (stat.S_IMODE(secrets_dir.stat().st_mode), stat.S_IMODE(secret_file.stat().st_mode)) == (
        0o700,
        0o600,
    )
    database = app.state.settings.database_path
    files = list(database.parent.glob(database.name + "*"))
    assert database in files
    for path in files:
        assert password.encode() not in path.read_bytes(), path.name

    changed = await client.put(URL, json={"proxy_url": "http://bob:other-pw@proxy.internal:3128"})
    assert changed.status_code == 200
    assert [p.read_text() for p in secrets_dir.iterdir()] == ["other-pw"]  # the old file is gone
    await client.put(URL, json={"proxy_url": None})
    assert list(secrets_dir.iterdir()) == []


async def test_a_missing_proxy_password_is_a_warning(client: httpx.AsyncClient, app: FastAPI) -> None:
    await client.put(URL, json={"proxy_url": "http://bob:pw@proxy.internal:3128"})
    for path in (app.state.settings.cloud_dir / "secrets").iterdir():
        path.unlink()
    answer = (await client.get(URL)).json()
    assert (answer["proxy_url"], answer["warnings"]) == (
        "http://bob@proxy.internal:3128",
        [
            "The saved proxy password is missing from the secret store; the proxy is used without one "
            "until you save `proxy_url` again."
        ],
    )


# What a settings value may do to the routes that read the settings later: the property below.
READERS = ["/api/cloud/providers", URL, f"{URL}/validate", f"{URL}/versions", f"{URL}/billing",
           "/api/cloud/system-status"]  # fmt: skip
PROVIDER_FAILURES = {502: {"provider_unavailable", "provider_error"}, 504: {"provider_timeout"}}
CLOSED_PORT = free_port()  # nothing listens there: a proxy or "Replicate" on it fails at once, offline
JUNK = ["", "\r\n", "\n", "\r", " ", "\t", "\x00", "\x7f", "é", "@", "%", "%zz", "[", "]", ":", "/x", "?q=1",
        "#f", "\\", "'", '"']  # fmt: skip


@st.composite
def urls(draw: st.DrawFn, schemes: list[str]) -> str:
    """URLs pointing at this machine only (no DNS, no network), with odd bytes in odd places."""
    port = draw(st.one_of(st.just(str(CLOSED_PORT)), st.integers(0, 999_999).map(str), st.just("x")))
    parts = [draw(st.sampled_from(schemes)), "://", draw(st.sampled_from(["", "bob@", "bob:pw@", ":pw@"])),
             "127.0.0.1", ":" + port, draw(st.sampled_from(["", "/", "/path"]))]  # fmt: skip
    where = draw(st.integers(0, len(parts)))
    parts.insert(where, draw(st.sampled_from(JUNK)))
    return "".join(parts)


AMOUNTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**40), 10**40),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from([1e308, 1e-300, "1e400", "-0", "0.0000001"]),
)
SETTINGS_CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "proxy_url": urls(["http", "https", "socks5", "socks5h", "ftp"]),
        "public_url": urls(["http", "https"]),
        "cost_limit": st.fixed_dictionaries({"enabled": st.just(True), "amount": AMOUNTS}),
        "model": st.one_of(st.text(max_size=40), st.just("a/" + "b" * 70_000), st.just("owner/" + "n" * 300)),
        "http_timeout": st.one_of(st.floats(min_value=1e-9, max_value=1e6), st.just(float("nan"))),
        "hardware": st.one_of(st.sampled_from(["l40s", "a100"]), st.text(max_size=20)),
    },
)


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=SETTINGS_CHANGES)
async def test_no_accepted_setting_breaks_a_reader(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch, changes: dict[str, Any]
) -> None:
    """Whatever PUT accepts, every route that reads the settings still answers (a provider failure
    through an unreachable proxy is an answer; a 500 is not), and no answer balloons."""
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_" + "p" * 37)
    app.state.provider_runtime = ProviderRuntime(
        retry_policy=RetryPolicy(max_attempts=1), environ={"REPLICATE_API_TOKEN": "r8_" + "p" * 37}
    )
    app.state.settings.replicate_base_url = f"http://127.0.0.1:{CLOSED_PORT}"
    app.state.settings.status_page_url = f"http://127.0.0.1:{CLOSED_PORT}"
    await client.put(URL, json=dict.fromkeys(DEFAULTS) | {"derived": None, "warnings": None})
    body = json.dumps(changes, allow_nan=True)  # NaN and Infinity, as a careless client sends them
    saved = await client.put(URL, content=body, headers={"Content-Type": "application/json"})
    assert saved.status_code in (200, 422), saved.text[:500]
    if saved.status_code != 200:
        return
    for path in READERS:
        answer = await client.get(path)
        code = answer.json().get("error", {}).get("code")
        assert answer.status_code < 500 or code in PROVIDER_FAILURES.get(answer.status_code, ()), (
            f"after PUT {body[:300]}: GET {path} -> {answer.status_code} {answer.text[:300]}"
        )
        assert len(answer.content) < 16_384, f"GET {path} answered {len(answer.content)} bytes"
