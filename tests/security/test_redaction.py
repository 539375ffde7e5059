"""No token of any kind reaches a log line."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simpletuner_cloud.security.redaction import (
    _NEEDS,
    _PATTERNS,
    MASK,
    MIN_CUT_SECRET,
    RedactingFilter,
    hold_secrets,
    install_redaction,
    known_secrets,
    mask,
    masked_from,
    redact,
    release_secrets,
    secret_value,
)

REPLICATE = "r8_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t"
HF = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"token is {REPLICATE} ok", REPLICATE),
        (f"HF {HF}", HF),
        (f"Authorization: Bearer {REPLICATE}", REPLICATE),
        ("authorization: Token abcdefghijklmnop", "abcdefghijklmnop"),
        ("{'Authorization': 'Bearer sk-live-1234567890'}", "sk-live-1234567890"),
        (f'{{"s3_secret_key": "{AWS_SECRET}"}}', AWS_SECRET),
        (f"aws_secret_access_key={AWS_SECRET}", AWS_SECRET),
        ("admin st_abcdefghijklmnopqrstuvwxyz012345", "st_abcdefghijklmnopqrstuvwxyz012345"),
        ("secret whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
        (f'{{"api_token": "{REPLICATE}"}}', REPLICATE),
    ],
)
def test_redact_masks_secret(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert MASK in cleaned


def test_redact_leaves_ordinary_text() -> None:
    assert redact("job job_abc moved to running at step 3/10") == "job job_abc moved to running at step 3/10"


def test_an_aws_access_key_id_is_masked_and_a_test_name_is_not_an_admin_token() -> None:
    assert redact("key AKIAIOSFODNN7EXAMPLE used") == f"key {MASK} used"
    name = "/tmp/test_start_makes_an_older_installations_state_private/state"
    assert redact(name) == name


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("note", f"ask {REPLICATE}"),
        ("base", HF),
        ("anything", "AKIAIOSFODNN7EXAMPLE"),
        ("myAwsSecretKey", AWS_SECRET),
        ("SECRET", f" {AWS_SECRET} "),
        ("webhook", "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
    ],
)
def test_secret_values_are_recognised_under_any_key(key: str, value: str) -> None:
    assert secret_value(key, value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("validation_prompt", "a photo of sks plushie on a wooden desk"),
        ("pretrained_model_name_or_path", "black-forest-labs/FLUX.1-dev"),
        ("cache_dir_vae", AWS_SECRET),  # 40 characters, but not under a secret's key
        ("secret_sauce", "short"),
    ],
)
def test_ordinary_values_are_not_secrets(key: str, value: str) -> None:
    assert not secret_value(key, value)


def test_logged_args_and_tracebacks_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    logger = logging.getLogger("simpletuner_cloud.test")
    with caplog.at_level(logging.INFO):
        logger.info("using %s and %s", REPLICATE, HF)
        try:
            raise ValueError(f"bad token {REPLICATE}")
        except ValueError:
            logger.exception("failed with %s", AWS_SECRET)
    handler_text = caplog.text
    for record in caplog.records:
        RedactingFilter().filter(record)
        handler_text += record.getMessage() + (record.exc_text or "")
    assert REPLICATE not in handler_text
    assert HF not in handler_text
    assert MASK in handler_text


def test_filter_masks_exception_text() -> None:
    try:
        raise RuntimeError(f"boom {REPLICATE}")
    except RuntimeError as exc:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops", None, (type(exc), exc, None))
    RedactingFilter().filter(record)
    assert record.exc_text is not None and REPLICATE not in record.exc_text


@pytest.mark.parametrize("index", range(len(_PATTERNS)))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_quick_check_lets_through_everything_a_pattern_masks(index: int, data: st.DataObject) -> None:
    """`redact` skips text without any of the patterns' words: nothing a pattern would mask is skipped."""
    pattern, _ = _PATTERNS[index]
    text = data.draw(st.from_regex(pattern, fullmatch=False))
    assert _NEEDS.search(text), text


RAW_ARGUMENTS = (
    "2026-12-01 10:00:00,000 [ERROR] Could not parse input: ['--learning_rat=1', '--publishing_config=[{"
    '"provider": "s3", "bucket": "b", "access_key": "STJ01M8RWQNAVZBARFDKNV0", '
    f'"secret_key": "{AWS_SECRET}"}}]\', \'--hub_token={HF}\']\n'
    "2026-12-01 10:00:00,001 [ERROR] argparse.ArgumentError: unrecognized arguments: --learning_rat=1\n"
)


def test_mask_blanks_the_trainers_printed_keys_and_keeps_every_offset() -> None:
    masked = mask(RAW_ARGUMENTS)
    assert len(masked) == len(RAW_ARGUMENTS)
    for secret in ("STJ01M8RWQNAVZBARFDKNV0", AWS_SECRET, HF):
        assert secret not in masked
    assert '"access_key": "***********************"' in masked and '"bucket": "b"' in masked
    assert masked.endswith("unrecognized arguments: --learning_rat=1\n")
    assert mask("Step 10 of 100: loss 0.1") == "Step 10 of 100: loss 0.1"


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(min_value=0, max_value=len(RAW_ARGUMENTS)))
def test_masked_from_is_the_masked_text_from_any_offset(offset: int) -> None:
    """A log stored chunk by chunk, each masked from its own offset, is the whole log masked."""
    assert masked_from(RAW_ARGUMENTS, offset) == mask(RAW_ARGUMENTS)[offset:]
    head = masked_from(RAW_ARGUMENTS[:offset], 0)
    assert all(secret not in head + masked_from(RAW_ARGUMENTS, offset) for secret in (AWS_SECRET, HF))


def test_mask_finds_keys_in_any_case_beside_letters_that_lower_to_two() -> None:
    """Only the lines the quick check finds are masked, found in lowered text: `İ` lowers to two
    characters, and the offsets must still be the text's own."""
    for prefix in ("", "İstanbul "):
        text = f'{prefix}ok\n{prefix}"SECRET_KEY": "{AWS_SECRET}" and tokenizer\nStep 1 of 2\n'
        masked = mask(text)
        assert len(masked) == len(text) and AWS_SECRET not in masked
        assert masked.startswith(f'{prefix}ok\n{prefix}"SECRET_KEY": "****') and masked.endswith(
            "Step 1 of 2\n"
        )


# The secrets this server holds, whatever their shape ---------------------------------------------------
S3_SECRET = "CampaignFourS3SecretKeyVALUE0123456789ab"  # no pattern knows it: not 40 base64 characters
LOG_LINE = f"2026-12-01 10:00:00 [INFO] uploading with {S3_SECRET} to s3://b/p\nStep 1 of 2\n"


def test_a_held_secret_is_masked_on_its_own_wherever_masking_runs() -> None:
    assert mask(LOG_LINE) == LOG_LINE  # the patterns alone miss it
    hold_secrets("publishing.s3", [S3_SECRET])
    masked = mask(LOG_LINE)
    assert masked == LOG_LINE.replace(S3_SECRET, "*" * len(S3_SECRET))
    assert redact(f"boom {S3_SECRET}.") == f"boom {MASK}."
    assert redact(f"AKIAIOSFODNN7EXAMPLE:{S3_SECRET}") == f"{MASK}:{MASK}"
    assert secret_value("note", f"key {S3_SECRET}")
    assert known_secrets() == (S3_SECRET,)


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(min_value=0, max_value=len(LOG_LINE)))
def test_a_held_secret_cut_by_a_chunk_boundary_is_masked_in_both_chunks(offset: int) -> None:
    """The first chunk, stored before the rest of the line arrived, ends in part of the secret: that
    part is blanked (all but fewer than MIN_CUT_SECRET characters); the next is masked from the line's
    start."""
    hold_secrets("publishing.s3", [S3_SECRET])
    whole = LOG_LINE.replace(S3_SECRET, "*" * len(S3_SECRET))
    first, rest = masked_from(LOG_LINE[:offset], 0), masked_from(LOG_LINE, offset)
    assert rest == mask(LOG_LINE)[offset:] == whole[offset:]
    start = LOG_LINE.index(S3_SECRET)
    if not start < offset < start + MIN_CUT_SECRET:
        assert first + rest == whole
    assert S3_SECRET[:MIN_CUT_SECRET] not in first + rest


def test_a_secret_held_twice_stays_masked_until_both_holders_release_it() -> None:
    hold_secrets("publishing.s3.1", [S3_SECRET])
    hold_secrets("publishing.s3.2", [S3_SECRET])  # saved again under a new reference
    release_secrets("publishing.s3.1")  # the old reference deleted
    assert S3_SECRET not in mask(LOG_LINE)
    release_secrets("publishing.s3.2")
    assert mask(LOG_LINE) == LOG_LINE and known_secrets() == ()


def test_short_values_are_left_to_the_patterns_and_a_longer_secret_is_masked_whole() -> None:
    hold_secrets("proxy", ["hunter2", "step"])
    assert known_secrets() == ()
    hold_secrets("a", [S3_SECRET[:20]])
    hold_secrets("b", [S3_SECRET])  # contains the first: masked whole, not cut after 20 characters
    assert mask(f"x {S3_SECRET} y") == f"x {'*' * len(S3_SECRET)} y"
    assert redact(f"x {S3_SECRET} y") == f"x {MASK} y"
