"""The pure parts of following a job: reading Server-Sent Events from text lines, and money for people.
The live parts (streams, reconnects, the display) are in test_jobs.py, against a real server."""

from __future__ import annotations

from simpletuner_cloud.cli.cloud.job_watch import JobEvent, parse_events, usd


def test_events_are_dispatched_at_their_blank_line_only() -> None:
    lines = [
        ": ping - 2026-12-01 00:00:00",
        "id: 7",
        "event: status",
        'data: {"to_status": "queued",',
        'data:  "job_id": "job_1"}',
        "",
        "retry: 1000",
        "id: 8",
        "event: log",
        'data: {"offset": 0}',  # the connection drops here: no blank line, so no event 8
    ]
    assert list(parse_events(lines)) == [
        JobEvent(None, "ping", {}),
        JobEvent("7", "status", {"to_status": "queued", "job_id": "job_1"}),
    ]


def test_an_event_without_an_id_or_with_bad_data_is_not_taken_as_seen() -> None:
    lines = ["data: {not json}", "", "event: upload", 'data: {"bytes_done": 1}', "", "data: [1]", ""]
    assert list(parse_events(lines)) == [JobEvent(None, "upload", {"bytes_done": 1})]


def test_usd_keeps_a_digit_of_tiny_costs() -> None:
    assert [usd(v) for v in ("0", "0.000535", "0.00004", "0.5", "3.514", "12", None)] == [
        "$0.0000",
        "$0.0005",
        "$0.000040",
        "$0.5000",
        "$3.51",
        "$12.00",
        "",
    ]
