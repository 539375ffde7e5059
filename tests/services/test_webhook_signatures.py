"""The receiver's secret cache: single flight, a refetch on a mismatch at most every interval, a
failed fetch refused fast."""

from __future__ import annotations

import asyncio

import pytest

from simpletuner_cloud.errors import CloudError
from simpletuner_cloud.services.webhook_signatures import WebhookSecrets


class Fetcher:
    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        answer = self.answers[min(self.calls, len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_concurrent_first_deliveries_fetch_the_secret_once() -> None:
    secrets, fetch = WebhookSecrets(), Fetcher("whsec_one")
    found = await asyncio.gather(*(secrets.current("k", fetch) for _ in range(10)))
    assert found == ["whsec_one"] * 10 and fetch.calls == 1


async def test_a_new_token_fetches_the_secret_of_its_account() -> None:
    secrets, fetch = WebhookSecrets(), Fetcher("whsec_one", "whsec_two")
    assert await secrets.current("token-a", fetch) == "whsec_one"
    assert await secrets.current("token-b", fetch) == "whsec_two"


async def test_a_mismatch_refetches_once_then_not_again_within_the_interval() -> None:
    secrets, fetch = WebhookSecrets(min_refetch=3600), Fetcher("whsec_old", "whsec_new", "whsec_newer")
    await secrets.current("k", fetch)
    assert await secrets.refreshed("k", fetch) == "whsec_new"
    assert await secrets.refreshed("k", fetch) is None  # a flood of bad signatures: no more fetches
    assert fetch.calls == 2 and await secrets.current("k", fetch) == "whsec_new"


async def test_a_refetch_that_finds_the_same_secret_reports_no_rotation() -> None:
    secrets, fetch = WebhookSecrets(min_refetch=0), Fetcher("whsec_same")
    await secrets.current("k", fetch)
    assert await secrets.refreshed("k", fetch) is None and fetch.calls == 2


async def test_a_failed_fetch_is_a_503_error_and_is_not_retried_at_once() -> None:
    secrets = WebhookSecrets()
    fetch = Fetcher(CloudError("Replicate is down.", code="provider_unavailable"), "whsec_late")
    for _ in range(2):
        with pytest.raises(CloudError) as caught:
            await secrets.current("k", fetch)
        assert caught.value.code == "webhook_secret_unavailable" and caught.value.status == 503
        assert "Replicate is down." in caught.value.message
    assert fetch.calls == 1
