"""The exact log-line shapes of the real trainer (docs/trainer-contract.md section 1.3), as pure
functions so tests can pin them. `<pct>` always has one decimal place."""

from __future__ import annotations

from datetime import UTC, datetime

RUNNING, DONE, FAILED, OTHER = "⏳", "✓", "✗", "•"


def receiver_started(port: int) -> str:
    return f"[COG] Webhook receiver started on http://127.0.0.1:{port}/webhook"


def receiver_stopped() -> str:
    return "[COG] Webhook receiver stopped"


def stage(icon: str, label: str, *, percent: float | None = None, message: str | None = None) -> str:
    progress = f" ({percent:.1f}%)" if percent is not None else ""
    return f"[STAGE] {icon} {label}{progress}" + (f": {message}" if message else "")


def training_status(status: str) -> str:
    return f"[TRAINING] Status: {status}"


def running_training_block(
    *, batches: int, epochs: int, total_steps: int, batch_size: int, accumulation: int
) -> str:
    """The start summary of a fresh run: `[TRAINING] ` followed by a message that starts with a
    newline. The trainer mixes two prefixes, `-  ` and `  - `; both are reproduced as printed."""
    return (
        "[TRAINING] \n***** Running training *****\n"
        f"-  Num batches = {batches}\n"
        f"-  Num Epochs = {epochs}\n"
        "  - Current Epoch = 1\n"
        f"-  Total train batch size (w. parallel, distributed & accumulation) = {batch_size * accumulation}\n"
        f"  - Instantaneous batch size per device = {batch_size}\n"
        f"  - Gradient Accumulation steps = {accumulation}\n"
        f"-  Total optimization steps = {total_steps}\n"
        f"-  Total optimization steps remaining = {total_steps}"
    )


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


_BLOCKS = " ▏▎▍▌▋▊▉█"  # tqdm's unicode bar: eighths of a cell


def _bar(fraction: float, width: int = 10) -> str:
    """tqdm's bar at its default width (10 cells when the output is not a terminal)."""
    eighths = int(max(0.0, min(fraction, 1.0)) * width * 8)
    full, part = divmod(eighths, 8)
    if full >= width:
        return _BLOCKS[-1] * width
    return _BLOCKS[-1] * full + _BLOCKS[part] + " " * (width - full - 1)


def _postfix_number(value: float) -> str:
    """tqdm's `set_postfix` number format: three significant digits when that is shorter."""
    short = f"{value:.3g}".replace("+0", "+").replace("-0", "-")
    plain = str(value)
    return short if len(short) < len(plain) else plain


def progress_first(epoch: int, epochs: int, total: int) -> str:
    """tqdm's first render: `Epoch e/E Steps`, no comma, nothing done yet."""
    return f"Epoch {epoch}/{epochs} Steps:   0%|{_bar(0)}| 0/{total} [00:00<?, ?it/s]"


def progress(epoch: int, epochs: int, step: int, total: int, elapsed: float, loss: float, lr: float) -> str:
    """One tqdm refresh: `{desc}: {percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining},
    {rate}, step_loss=..., lr=...]`, the rate as `{:5.2f}it/s`, or `s/it` below one step a second."""
    fraction = step / total if total else 1.0
    rate = step / elapsed if elapsed > 0 else 0.0
    if rate <= 0:
        rate_text, remaining = "?it/s", "?"
    else:
        rate_text = f"{rate:5.2f}it/s" if rate >= 1 else f"{1 / rate:5.2f}s/it"
        remaining = _clock((total - step) / rate)
    return (
        f"Epoch {epoch}/{epochs}, Steps: {fraction * 100:3.0f}%|{_bar(fraction)}| {step}/{total} "
        f"[{_clock(elapsed)}<{remaining}, {rate_text}, "
        f"step_loss={_postfix_number(loss)}, lr={_postfix_number(lr)}]"
    )


def step_summary(step: int, total: int, loss: float, lr: float, epoch: int, epochs: int) -> str:
    return (
        f"Step {step} of {total}: loss {loss:.4f}, lr {lr:g}, epoch {epoch}/{epochs}, "
        f"ema_decay_value 0.0, train_loss {loss:.4f}"
    )


def checkpoint_lines(summary: str, output_dir: str, step: int) -> list[str]:
    """The four lines each checkpoint prints, in order (the notification title repeats the message)."""
    title = f"Checkpoint: `{summary}`"
    path = f"{output_dir}/checkpoint-{step}"
    return [
        f"[INFO] {title}: {title}",
        stage(RUNNING, "Saving Checkpoint", message=f"Saving checkpoint to {path}"),
        stage(DONE, "Saving Checkpoint", message=f"Saved checkpoint to {path}"),
        "[CHECKPOINT] Checkpoint saved",
    ]


def training_complete() -> str:
    return stage(DONE, "Training Complete", percent=100.0, message="Training run complete.")


# What the cog's receiver prints for the parser's webhook notification (severity error, no title).
ARGUMENT_ERROR_NOTIFICATION = (
    "[ERROR] Command Line Argument Error: Failed to parse command line arguments. "
    "Please check the server logs for details."
)


def _asctime(timestamp: float) -> str:
    stamp = datetime.fromtimestamp(timestamp, UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S") + f",{stamp.microsecond // 1000:03d}"


def console_line(timestamp: float, message: str, *, level: str = "ERROR") -> str:
    """A trainer console log line, `<asctime> [<LEVEL>] <message>` (the console shows ERROR and up)."""
    return f"{_asctime(timestamp)} [{level}] {message}"


def debug_line(timestamp: float, message: str, *, level: str = "DEBUG", logger: str = "SimpleTuner") -> str:
    return f"[RANK 0] {_asctime(timestamp)} [{level}] ({logger}) {message}"


def debug_tail(debug_lines: list[str], final_line: str, limit: int = 5000) -> list[str]:
    """`=== debug.log tail ===`, the last `limit` characters of debug.log, then the one result line."""
    text = "\n".join(debug_lines)
    if len(text) > limit:
        text = text[-limit:]
        text = text[text.find("\n") + 1 :] if "\n" in text else text
    return ["=== debug.log tail ===", *([text] if text else []), final_line]
