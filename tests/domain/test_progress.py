"""The stage from `[STAGE]` lines (trainer-contract §1.3): every printed form the contract lists, and
any label with any progress and message as the receiver prints them."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simpletuner_cloud.domain.progress import TrainingProgress, parse_logs

BEFORE = TrainingProgress(stage="Loading base model")


def stage_of(line: str, previous: TrainingProgress = BEFORE) -> str | None:
    progress, _ = parse_logs(line + "\n", previous)
    return progress.stage


@pytest.mark.parametrize(
    ("line", "stage"),
    [
        ("[STAGE] ⏳ Loading base model", "Loading base model"),
        ("[STAGE] ✓ Configuring data backends", "Configuring data backends"),
        ("[STAGE] ⏳ Preparing model components", "Preparing model components"),
        ("[STAGE] • Benchmarking base model", "Benchmarking base model"),
        ("[STAGE] ✓ Resume Checkpoint", "Resume Checkpoint"),
        ("[STAGE] ⏳ Text Embedding Caching in Progress (45.0%)", "Text Embedding Caching in Progress"),
        ("[STAGE] ⏳ VAE Caching (bucket 1.0) (12.5%)", "VAE Caching (bucket 1.0)"),
        ("[STAGE] ✓ VAE Caching (bucket 1.0) (100.0%)", "VAE Caching (bucket 1.0)"),
        ("[STAGE] ⏳ VAE Caching (bucket 1.0) (3/24)", "VAE Caching (bucket 1.0)"),
        ("[STAGE] ⏳ VAE Caching (bucket 1.0)", "VAE Caching (bucket 1.0)"),
        ("[STAGE] ⏳ Running Validation", "Running Validation"),
        ("[STAGE] ✓ Running Final Validations", "Running Final Validations"),
        ("[STAGE] ⏳ Saving Final Model", "Saving Final Model"),
        ("[STAGE] ✗ Training Aborted", "Training Aborted"),
        (
            "[STAGE] ⏳ Saving Checkpoint: Saving checkpoint to /src/output/checkpoint-250",
            "Saving Checkpoint",
        ),
        ("[STAGE] ✓ Saving Checkpoint: Saved checkpoint to /out (a: b) (1.0%)", "Saving Checkpoint"),
        ("[STAGE] ✓ Training Complete (100.0%): Training run complete.", "Training Complete"),
        ("[STAGE] ⏳ Downloading (3/10): shard (2 of 10): ok", "Downloading"),
    ],
)
def test_every_stage_line_of_the_contract_names_its_stage(line: str, stage: str) -> None:
    assert stage_of(line) == stage


def test_the_last_stage_line_wins_and_other_lines_keep_it() -> None:
    logs = (
        "[STAGE] ⏳ Text Embedding Caching in Progress (50.0%)\n"
        "[STAGE] ✓ VAE Caching (bucket 1.0) (100.0%)\n"
        "[INFO] something else: (in parentheses)\n"
    )
    progress, _ = parse_logs(logs, TrainingProgress())
    assert progress.stage == "VAE Caching (bucket 1.0)"


_LABEL_CHARS = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\r\n")
labels = (
    st.text(_LABEL_CHARS, min_size=1, max_size=40)
    .map(str.strip)
    .filter(lambda label: label and ": " not in label and not label.endswith(":"))
    .filter(lambda label: not re.search(r" \((?:\d+(?:\.\d+)?%|\d+/\d+)\)$", label))
)
progress_parts = st.one_of(
    st.none(),
    st.floats(0, 100, allow_nan=False).map(lambda pct: f" ({pct:.1f}%)"),
    st.tuples(st.integers(0, 10_000), st.integers(1, 10_000)).map(lambda t: f" ({t[0]}/{t[1]})"),
)
messages = st.one_of(st.none(), st.text(_LABEL_CHARS, min_size=1, max_size=60).filter(str.strip))


@given(
    icon=st.sampled_from(["⏳", "✓", "✗", "•"]),
    label=labels,
    progress=progress_parts,
    message=messages,
)
def test_any_label_with_any_progress_and_message_is_the_stage(
    icon: str, label: str, progress: str | None, message: str | None
) -> None:
    line = f"[STAGE] {icon} {label}{progress or ''}" + (f": {message}" if message else "")
    assert stage_of(line) == label
