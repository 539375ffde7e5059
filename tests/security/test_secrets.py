"""The secret store: what it saves or reads is masked by the redaction until it is deleted, whatever
the value looks like, in every process that reads the same folder."""

from __future__ import annotations

import json

from simpletuner_cloud.security.files import write_secret_file
from simpletuner_cloud.security.redaction import forget_known_secrets, known_secrets, mask, redact
from simpletuner_cloud.security.secrets import SecretStore, learn_saved_secrets
from simpletuner_cloud.services.job_secrets import delete_job_secrets, save_job_secrets
from simpletuner_cloud.settings import load_settings

S3_SECRET = "CampaignFourS3SecretKeyVALUE0123456789ab"
STARS = "*" * len(S3_SECRET)


def test_a_saved_secret_is_masked_until_it_is_deleted() -> None:
    store = SecretStore.of(load_settings())
    reference = store.new_reference("publishing.s3_secret_key")
    store.put(reference, S3_SECRET)
    assert mask(f"key {S3_SECRET}") == f"key {STARS}"
    assert store.delete(reference)
    assert mask(f"key {S3_SECRET}") == f"key {S3_SECRET}"
    assert known_secrets() == ()


def test_saving_the_same_secret_again_under_a_new_reference_keeps_it_masked() -> None:
    """`update_publishing` writes the new reference, then deletes the old one."""
    store = SecretStore.of(load_settings())
    old, new = store.new_reference("publishing.s3"), store.new_reference("publishing.s3")
    store.put(old, S3_SECRET)
    store.put(new, S3_SECRET)
    store.delete(old)
    assert S3_SECRET not in redact(f"boom {S3_SECRET}")


def test_a_secret_saved_by_another_process_is_learned_when_read_or_at_start_up() -> None:
    settings = load_settings()
    store = SecretStore.of(settings)
    store.put("publishing.s3.abc", S3_SECRET)
    forget_known_secrets()  # this process never saw it written
    assert store.get("publishing.s3.abc") == S3_SECRET
    assert S3_SECRET not in mask(S3_SECRET)
    forget_known_secrets()
    token = "r8_" + "Z" * 37
    write_secret_file(settings.replicate_token_path, token)
    forget_known_secrets()
    learn_saved_secrets(settings)
    assert set(known_secrets()) == {S3_SECRET, token}


def test_a_jobs_secrets_are_masked_one_by_one_until_the_job_is_cleaned_up() -> None:
    settings = load_settings()
    secrets = {
        "hf_token": "hf_" + "q" * 34,
        "s3_access_key": "STJ01M8RWQNAVZBARFDKNV0",
        "s3_secret_key": S3_SECRET,
    }
    save_job_secrets(settings, "job_01m8rwqnavzbarfdknv0", secrets)
    assert set(known_secrets()) == set(secrets.values())
    assert mask(json.dumps(secrets)).count("*") == sum(map(len, secrets.values()))
    delete_job_secrets(settings, "job_01m8rwqnavzbarfdknv0")
    assert known_secrets() == ()
