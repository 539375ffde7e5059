"""The job state machine: forward-only, terminal is final, Replicate statuses map as documented."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simpletuner_cloud.domain.jobs import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    JobStatus,
    can_transition,
    is_stale,
    is_terminal,
    map_replicate_status,
    transition,
)
from simpletuner_cloud.errors import InvalidTransition

S = JobStatus
HAPPY_PATH = [S.CREATED, S.PACKAGING, S.UPLOADING, S.SUBMITTING, S.QUEUED, S.RUNNING, S.SUCCEEDED]
statuses = st.sampled_from(list(JobStatus))


def test_terminal_and_active_partition_all_statuses() -> None:
    assert {S.SUCCEEDED, S.FAILED, S.CANCELED} == TERMINAL_STATUSES
    assert ACTIVE_STATUSES | TERMINAL_STATUSES == set(JobStatus)
    assert not ACTIVE_STATUSES & TERMINAL_STATUSES
    assert is_terminal("failed") and not is_terminal(S.RUNNING)


def test_happy_path_step_by_step() -> None:
    status = S.CREATED
    for target in HAPPY_PATH[1:]:
        status = transition(status, target)
    assert status is S.SUCCEEDED


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.QUEUED, S.SUCCEEDED), (S.CREATED, S.RUNNING), (S.SUBMITTING, S.RUNNING), (S.CREATED, S.QUEUED)],
)
def test_skipping_forward_is_allowed(current: JobStatus, target: JobStatus) -> None:
    assert transition(current, target) is target


@pytest.mark.parametrize("current", sorted(ACTIVE_STATUSES))
def test_any_active_state_can_fail_or_be_canceled(current: JobStatus) -> None:
    assert can_transition(current, S.FAILED)
    assert can_transition(current, S.CANCELED)


@pytest.mark.parametrize("current", sorted(ACTIVE_STATUSES))
def test_same_active_state_is_a_legal_noop(current: JobStatus) -> None:
    assert transition(current, current) is current
    assert not is_stale(current, current)


def test_going_back_is_refused_and_stale() -> None:
    assert not can_transition(S.RUNNING, S.QUEUED)
    assert is_stale(S.RUNNING, S.QUEUED)
    with pytest.raises(InvalidTransition) as caught:
        transition(S.RUNNING, S.QUEUED)
    assert caught.value.code == "invalid_transition"
    assert caught.value.status == 409
    assert caught.value.details == {"from": "running", "to": "queued", "stale": True}


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_duplicate_terminal_event_is_stale_not_a_move(terminal: JobStatus) -> None:
    assert not can_transition(terminal, terminal)
    assert is_stale(terminal, terminal)
    with pytest.raises(InvalidTransition):
        transition(terminal, terminal)


def test_a_different_terminal_state_is_a_conflict_not_stale() -> None:
    assert not can_transition(S.CANCELED, S.SUCCEEDED)
    assert not is_stale(S.CANCELED, S.SUCCEEDED)
    with pytest.raises(InvalidTransition) as caught:
        transition(S.CANCELED, S.SUCCEEDED)
    assert caught.value.details["stale"] is False
    assert "already canceled" in caught.value.message


def test_strings_are_accepted_and_unknown_names_rejected() -> None:
    assert transition("queued", "running") is S.RUNNING
    with pytest.raises(ValueError):
        can_transition("queued", "starting")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("starting", S.QUEUED),
        ("processing", S.RUNNING),
        ("succeeded", S.SUCCEEDED),
        ("failed", S.FAILED),
        ("canceled", S.CANCELED),
        ("aborted", S.FAILED),
        ("Processing", S.RUNNING),
        ("booting", None),
        ("", None),
        (None, None),
    ],
)
def test_map_replicate_status(raw: str | None, expected: JobStatus | None) -> None:
    assert map_replicate_status(raw) is expected


@given(st.lists(statuses, max_size=30))
def test_once_terminal_the_status_never_changes(attempts: list[JobStatus]) -> None:
    status = S.CREATED
    reached: JobStatus | None = None
    for target in attempts:
        if can_transition(status, target):
            status = transition(status, target)
        if reached is None and status in TERMINAL_STATUSES:
            reached = status
        if reached is not None:
            assert status is reached


@given(st.lists(statuses, max_size=30))
def test_status_only_moves_forward(attempts: list[JobStatus]) -> None:
    def rank(status: JobStatus) -> int:
        # failed/canceled sit past the end of the happy path
        return HAPPY_PATH.index(status) if status in HAPPY_PATH else len(HAPPY_PATH)

    status = S.CREATED
    for target in attempts:
        try:
            new = transition(status, target)
        except InvalidTransition:
            new = status
        assert rank(new) >= rank(status)
        status = new


@given(statuses, statuses)
def test_every_pair_is_exactly_one_of_legal_stale_or_conflict(current: JobStatus, target: JobStatus) -> None:
    legal, stale = can_transition(current, target), is_stale(current, target)
    assert not (legal and stale)
    conflict = not legal and not stale
    if conflict:
        assert current in TERMINAL_STATUSES and target in TERMINAL_STATUSES and current != target
    if current in TERMINAL_STATUSES:
        assert not legal
