"""`/api/cloud/publishing`: the settings (secrets accepted, kept in the secret store, never returned),
the S3 test button against a real moto server process, and the Hub token check against the
sandbox's Hub routes (offline), with the answers for an unreachable Hub or endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.live_server import free_port
from tests.support.provider_sandbox import RunningSandbox, standalone_sandbox
from tests.support.s3_servers import MOTO_KEYS, MotoServer, moto_server

TOKEN = "hf_publishingTestToken000000000000000"
S3_KEYS = {"access_key": MOTO_KEYS["aws_access_key_id"], "secret_key": MOTO_KEYS["aws_secret_access_key"]}


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    with moto_server(tmp_path / "moto") as server:
        server.bucket("my-loras")
        yield server


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningSandbox]:
    with standalone_sandbox(tmp_path / "sandbox") as sandbox:
        monkeypatch.setenv("HF_ENDPOINT", f"{sandbox.url}/hub")
        yield sandbox


def defaults(state_root: Path, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "default_delivery": None,
        "hub": {
            "push_to_hub": False,
            "hub_model_id": None,
            "private": True,
            "token": {"source": None, "saved": False, "endpoint": "https://huggingface.co"},
        },
        "s3": {
            "endpoint_url": None,
            "region": "us-east-1",
            "bucket": None,
            "prefix": "simpletuner",
            "public_base_url": None,
            "access_key": {"saved": False},
            "secret_key": {"saved": False},
        },
        "local": {
            "max_object_bytes": 20 * 1024**3,
            "available": False,
            "message": "Local download needs a public URL the trainer can reach. Start a tunnel (`ngrok http "
            "8080` or `cloudflared tunnel --url http://localhost:8080`) and save its https URL as the "
            'public URL (Cloud -> Settings, or PUT /api/cloud/providers/replicate with {"public_url": '
            '"https://..."}).',
            "public_url": None,
            "endpoint_url": None,
            "folder": str(state_root / "cloud_outputs"),
        },
        "warnings": [],
    }
    for section, values in changes.items():
        if isinstance(values, dict):
            body[section] = {**body[section], **values}
        else:
            body[section] = values
    return body


async def test_the_defaults(client: httpx.AsyncClient, state_root: Path) -> None:
    answer = await client.get("/api/cloud/publishing")
    assert answer.status_code == 200 and answer.json() == defaults(state_root)


SAVED_TOKEN = "hf_savedOnlyHere00000000000000000000"


async def test_secrets_are_saved_apart_and_never_returned(
    client: httpx.AsyncClient, state_root: Path, hub: RunningSandbox
) -> None:
    endpoint = f"{hub.url}/hub"
    put = await client.put(
        "/api/cloud/publishing",
        json={
            "default_delivery": "s3",
            "hub": {"push_to_hub": True, "hub_model_id": "ana/my-lora", "token": SAVED_TOKEN},
            "s3": {"bucket": "my-loras", "endpoint_url": "https://s3.example.com/", **S3_KEYS},
        },
    )
    assert put.status_code == 200, put.text
    expected = defaults(
        state_root,
        default_delivery="s3",
        hub={
            "push_to_hub": True,
            "hub_model_id": "ana/my-lora",
            "token": {"source": "saved", "saved": True, "endpoint": endpoint},
        },
        s3={
            "bucket": "my-loras",
            "endpoint_url": "https://s3.example.com",
            "access_key": {"saved": True},
            "secret_key": {"saved": True},
        },
    )
    body = put.json()
    assert body.pop("hub_check")["status"] == "valid"
    assert body == expected
    assert (await client.get("/api/cloud/publishing")).json() == expected
    secrets = state_root / "cloud" / "secrets"
    stored = {p.read_text() for p in secrets.iterdir() if p.name.startswith("publishing.")}
    assert stored == {SAVED_TOKEN, *S3_KEYS.values()}
    assert all(p.stat().st_mode & 0o077 == 0 for p in secrets.iterdir())
    database = (state_root / "cloud" / "jobs.db").read_bytes() + b"".join(
        p.read_bytes() for p in (state_root / "cloud").glob("jobs.db-*")
    )
    for secret in (SAVED_TOKEN, *S3_KEYS.values()):
        assert secret.encode() not in database and secret not in put.text

    deleted = await client.put(
        "/api/cloud/publishing", json={"hub": {"token": None}, "s3": {"secret_key": None}}
    )
    assert deleted.json()["hub"]["token"] == {"source": None, "saved": False, "endpoint": endpoint}
    assert deleted.json()["s3"]["secret_key"] == {"saved": False} and deleted.json()["s3"]["access_key"] == {
        "saved": True
    }
    assert {p.read_text() for p in secrets.iterdir() if p.name.startswith("publishing.")} == {
        S3_KEYS["access_key"]
    }


async def test_hf_token_from_the_environment_wins(
    client: httpx.AsyncClient, state_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    answer = (await client.get("/api/cloud/publishing")).json()
    assert answer["hub"]["token"] == {"source": "env", "saved": False, "endpoint": "https://huggingface.co"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"hub": {"hub_model_id": "no-slash"}}, "hub.hub_model_id",
         "must be `username/repo-name` (for example `username/my-lora`), not 'no-slash'"),
        ({"s3": {"bucket": "Bad_Bucket"}}, "s3.bucket",
         "must be an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens), not 'Bad_Bucket'"),
        ({"s3": {"endpoint_url": "ftp://files.example.com"}}, "s3.endpoint_url",
         "must be an http(s) URL such as https://s3.us-west-002.backblazeb2.com"),
        ({"s3": {"prefix": "a/../b"}}, "s3.prefix",
         "must be a plain key prefix such as `simpletuner/loras`, not 'a/../b'"),
        ({"default_delivery": "ftp"}, "default_delivery", "Input should be 'hub', 's3', 'local' or 'none'"),
    ],
)  # fmt: skip
async def test_bad_values_name_the_field(
    client: httpx.AsyncClient, body: dict[str, Any], field: str, message: str
) -> None:
    answer = await client.put("/api/cloud/publishing", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"] == {
        "code": "validation_error",
        "message": f"Invalid value for `{field}`: {message}",
        "hint": "Fix the named field and send the request again.",
        "details": {"fields": [{"field": field, "message": message}]},
    }


async def test_local_download_is_available_once_a_public_url_is_set(
    client: httpx.AsyncClient, state_root: Path
) -> None:
    saved = await client.put(
        "/api/cloud/providers/replicate", json={"public_url": "https://abc.trycloudflare.com"}
    )
    assert saved.status_code == 200, saved.text
    local = (await client.get("/api/cloud/publishing")).json()["local"]
    assert local == {
        "max_object_bytes": 20 * 1024**3,
        "available": True,
        "message": "The trainer uploads to https://abc.trycloudflare.com/api/cloud/storage with per-job "
        "keys; files land in cloud_outputs/<job id>/.",
        "public_url": "https://abc.trycloudflare.com",
        "endpoint_url": "https://abc.trycloudflare.com/api/cloud/storage",
        "folder": str(state_root / "cloud_outputs"),
    }


# The S3 test button --------------------------------------------------------------------------------
async def test_the_s3_test_writes_reads_back_and_deletes(client: httpx.AsyncClient, moto: MotoServer) -> None:
    await client.put(
        "/api/cloud/publishing", json={"s3": {"endpoint_url": moto.url, "bucket": "my-loras", **S3_KEYS}}
    )
    answer = await client.post("/api/cloud/publishing/s3/test")
    body = answer.json()
    key = body["key"]
    assert answer.status_code == 200 and key.startswith("simpletuner/.simpletuner-test-")
    assert body == {
        "ok": True,
        "failed_step": None,
        "message": "The bucket `my-loras` accepts writes, reads and deletes with these keys.",
        "hint": "",
        "bucket": "my-loras",
        "endpoint_url": moto.url,
        "key": key,
        "steps": [
            {"step": "write", "ok": True, "detail": f"Wrote 49 bytes to {moto.url}/my-loras/{key}."},
            {"step": "read", "ok": True, "detail": "Read the object back; its bytes match."},
            {"step": "delete", "ok": True, "detail": "Deleted the test object."},
        ],
    }
    assert moto.keys("my-loras") == {}


async def test_the_s3_test_names_the_step_that_failed(client: httpx.AsyncClient, moto: MotoServer) -> None:
    await client.put(
        "/api/cloud/publishing",
        json={"s3": {"endpoint_url": moto.url, "bucket": "missing-bucket", **S3_KEYS}},
    )
    body = (await client.post("/api/cloud/publishing/s3/test")).json()
    assert (body["ok"], body["failed_step"]) == (False, "write")
    assert body["message"] == "The write step failed: NoSuchBucket: The specified bucket does not exist"
    assert body["hint"] == "Create the bucket `missing-bucket` or fix its name."
    assert [(s["step"], s["ok"]) for s in body["steps"]] == [
        ("write", False),
        ("read", None),
        ("delete", None),
    ]


async def test_an_unreachable_endpoint_is_named(client: httpx.AsyncClient) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    body = (
        await client.post(
            "/api/cloud/publishing/s3/test", json={"endpoint_url": closed, "bucket": "my-loras", **S3_KEYS}
        )
    ).json()
    assert (body["ok"], body["failed_step"]) == (False, "write")
    assert body["message"].startswith(f"The write step failed: Could not reach {closed}")
    assert body["hint"] == "Check the endpoint URL and that this machine can reach it."


async def test_settings_sent_to_the_test_are_not_saved(client: httpx.AsyncClient, moto: MotoServer) -> None:
    body = (
        await client.post(
            "/api/cloud/publishing/s3/test", json={"endpoint_url": moto.url, "bucket": "my-loras", **S3_KEYS}
        )
    ).json()
    assert body["ok"] is True
    saved = (await client.get("/api/cloud/publishing")).json()["s3"]
    assert saved["bucket"] is None and saved["access_key"] == {"saved": False}


async def test_a_key_sent_as_null_is_tested_as_saving_it_would_save_it(
    client: httpx.AsyncClient, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form's cleared Endpoint is `null`: the test is of AWS S3 (what Save would switch to), not of
    the saved endpoint; a key left out keeps its saved value."""
    from simpletuner_cloud.services import publishing_checks
    from simpletuner_cloud.services.external_s3 import S3Target, S3TestView

    tested: list[S3Target] = []

    def fake_test(target: S3Target) -> S3TestView:  # AWS itself is not reachable from a test
        tested.append(target)
        return S3TestView(
            ok=True,
            failed_step=None,
            message="",
            hint="",
            bucket=target.bucket,
            endpoint_url=target.endpoint_url,
            key="k",
            steps=[],
        )

    monkeypatch.setattr(publishing_checks, "test_bucket", fake_test)
    saved = {"endpoint_url": moto.url, "region": "eu-west-1", "bucket": "my-loras", "prefix": "mine"}
    await client.put("/api/cloud/publishing", json={"s3": {**saved, **S3_KEYS}})
    cleared = {"endpoint_url": None, "region": None, "prefix": None, "public_base_url": None}
    answer = await client.post("/api/cloud/publishing/s3/test", json={"bucket": "my-loras", **cleared})
    assert answer.status_code == 200 and answer.json()["endpoint_url"] is None
    left_out = await client.post("/api/cloud/publishing/s3/test", json={"bucket": "other"})
    assert left_out.status_code == 200
    keys = (S3_KEYS["access_key"], S3_KEYS["secret_key"])
    assert [(t.endpoint_url, t.region, t.bucket, t.prefix, (t.access_key, t.secret_key)) for t in tested] == [
        (None, "us-east-1", "my-loras", "simpletuner", keys),
        (moto.url, "eu-west-1", "other", "mine", keys),
    ]
    no_key = await client.post("/api/cloud/publishing/s3/test", json={"access_key": None})
    assert no_key.status_code == 422 and no_key.json()["error"]["code"] == "s3_keys_missing"
    assert len(tested) == 2


async def test_the_s3_test_needs_a_bucket_and_keys(client: httpx.AsyncClient) -> None:
    no_bucket = await client.post("/api/cloud/publishing/s3/test")
    assert no_bucket.status_code == 422 and no_bucket.json()["error"]["code"] == "s3_not_configured"
    no_keys = await client.post("/api/cloud/publishing/s3/test", json={"bucket": "my-loras"})
    assert no_keys.status_code == 422
    assert no_keys.json()["error"] == {
        "code": "s3_keys_missing",
        "message": "S3 publishing needs an access key and a secret key.",
        "hint": "Save them in the Publishing settings (PUT /api/cloud/publishing with "
        '{"s3": {"access_key": "...", "secret_key": "..."}}). The trainer gets them as Secret inputs.',
    }


# The Hub token check ---------------------------------------------------------------------------------
async def test_a_valid_token_names_its_user(client: httpx.AsyncClient, hub: RunningSandbox) -> None:
    answer = await client.post("/api/cloud/publishing/hub/test", json={"token": TOKEN})
    assert answer.json() == {
        "status": "valid",
        "ok": True,
        "user": "sandbox-user",
        "can_write": True,
        "endpoint": f"{hub.url}/hub",
        "message": "The token belongs to sandbox-user.",
        "hint": "",
    }


async def test_a_refused_a_read_only_and_a_missing_token(
    client: httpx.AsyncClient, hub: RunningSandbox
) -> None:
    refused = (await client.post("/api/cloud/publishing/hub/test", json={"token": "hf_short"})).json()
    assert (refused["status"], refused["ok"]) == ("invalid", False)
    assert refused["message"] == "Hugging Face refused the token (401 Invalid user token)."
    read_only = (
        await client.post("/api/cloud/publishing/hub/test", json={"token": "hf_readOnly" + "0" * 26})
    ).json()
    assert (read_only["status"], read_only["can_write"]) == ("valid", False)
    assert (
        read_only["message"]
        == "The token belongs to sandbox-user, but it is a read token: the trainer cannot push with it."
    )
    missing = (await client.post("/api/cloud/publishing/hub/test")).json()
    assert (missing["status"], missing["message"]) == (
        "missing",
        "No Hugging Face token: HF_TOKEN is not set and none is saved.",
    )


async def test_an_unreachable_hub_gets_a_clear_offline_answer(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    answer = (await client.post("/api/cloud/publishing/hub/test")).json()
    assert answer["status"] == "unreachable" and answer["ok"] is False and answer["endpoint"] == closed
    assert answer["message"].startswith(f"Hugging Face could not be reached at {closed} (")
    assert answer["message"].endswith("); the token was not checked.")
    assert answer["hint"] == (
        "This machine seems offline or behind a proxy. The token is kept; it is checked again when the Hub "
        "is reachable, and the trainer (on Replicate) reaches the Hub on its own."
    )


async def test_saving_a_token_checks_it(client: httpx.AsyncClient, hub: RunningSandbox) -> None:
    answer = (await client.put("/api/cloud/publishing", json={"hub": {"token": TOKEN}})).json()
    assert answer["hub_check"]["status"] == "valid" and answer["hub"]["token"]["source"] == "saved"


@pytest.mark.parametrize("token", ["é", "a\nb", "hf_\x00x", "hf_ x", "hf_" + "x" * 300])
async def test_a_hub_token_no_request_can_carry_is_refused_at_put(
    client: httpx.AsyncClient, state_root: Path, token: str
) -> None:
    answer = await client.put("/api/cloud/publishing", json={"hub": {"token": token, "push_to_hub": True}})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "hf_token_invalid_format"
    assert error["hint"].startswith("Copy the whole token (it starts with hf_)")
    assert error["details"]["fields"][0]["field"] == "hub.token"
    assert token not in answer.text
    assert (await client.get("/api/cloud/publishing")).json() == defaults(state_root)  # nothing saved
    checked = (await client.post("/api/cloud/publishing/hub/test", json={"token": token})).json()
    assert (checked["status"], checked["ok"]) == ("invalid", False)
