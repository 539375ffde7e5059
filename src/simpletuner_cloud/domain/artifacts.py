"""What a delivered file is, from its name in the trainer's output folder: final weights, a checkpoint's
weights or state (with its step), a validation sample (with the step it was rendered at), the model
card, a cache entry, or something else. Pure: names in, kinds and steps out."""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["weights", "checkpoint", "validation_image", "model_card", "cache", "other"]
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")
SAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4", ".webm", ".wav", ".mp3", ".flac")
_CHECKPOINT = re.compile(r"(?:^|/)checkpoint-(\d+)(?:/|$)")
_SAMPLE_STEP = re.compile(r"(?:^|[ _/-])step[ _-]?(\d+)(?=[ _.-])")
CACHE_FOLDERS = ("vae-cache", "cache", "text_embed_cache", "vae_cache")


def classify(name: str) -> tuple[Kind, int | None]:
    """(kind, step) for a file name relative to the job's folder (the run folder may lead it)."""
    lowered = name.lower()
    parts = lowered.split("/")
    base = parts[-1]
    checkpoint = _CHECKPOINT.search(lowered)
    if any(part in CACHE_FOLDERS for part in parts[:-1]):
        return "cache", None
    if base == "readme.md":
        return "model_card", int(checkpoint.group(1)) if checkpoint else None
    if checkpoint is not None:
        return "checkpoint", int(checkpoint.group(1))
    if base.endswith(SAMPLE_SUFFIXES) and ("validation_images" in parts[:-1] or "assets" in parts[:-1]):
        step = _SAMPLE_STEP.search(base)
        return "validation_image", int(step.group(1)) if step else None
    if base.endswith(WEIGHT_SUFFIXES):
        return "weights", None
    return "other", None


def is_weights_file(name: str) -> bool:
    return name.lower().endswith(".safetensors")
