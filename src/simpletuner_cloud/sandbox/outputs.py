"""What the simulated trainer produces and publishes: the run's output folder (placeholder caches,
checkpoints with a clearly labelled placeholder LoRA in safetensors format with the tensor names of
the model family, placeholder validation images, final weights and a model card), S3 uploads of the
whole folder with boto3 (as the real trainer does), and the output string of trainer-contract 1.2."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

# Diffusers/PEFT LoRA key prefixes and (block, hidden size) per model family.
_FAMILIES: dict[str, tuple[str, int]] = {
    "flux": ("transformer.transformer_blocks.0.attn", 3072),
    "sd3": ("transformer.transformer_blocks.0.attn", 1536),
    "qwen_image": ("transformer.transformer_blocks.0.attn", 3072),
    "sdxl": ("unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1", 640),
}
_MODULES = ("to_q", "to_k", "to_v", "to_out.0")
PLACEHOLDER_NOTE = "simpletuner-cloud sandbox placeholder: zeros, not trained weights"


def _ascii_number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone takes `²`, which int() refuses


def placeholder_lora(model_family: str, rank: int) -> bytes:
    """A valid safetensors file (8-byte header length, JSON header, data) full of BF16 zeros."""
    prefix, hidden = _FAMILIES.get(model_family, _FAMILIES["flux"])
    rank = max(1, min(rank, 16))  # keep the placeholder small whatever the config says
    header: dict[str, Any] = {
        "__metadata__": {"format": "pt", "sandbox_placeholder": "true", "note": PLACEHOLDER_NOTE}
    }
    offset = 0
    for module in _MODULES:
        for part, shape in (("lora_A", [rank, hidden]), ("lora_B", [hidden, rank])):
            size = shape[0] * shape[1] * 2
            header[f"{prefix}.{module}.{part}.weight"] = {
                "dtype": "BF16",
                "shape": shape,
                "data_offsets": [offset, offset + size],
            }
            offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes with spaces
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def model_card(config: dict[str, Any], job_name: str, total_steps: int) -> str:
    family = config.get("model_family", "flux")
    base = config.get("pretrained_model_name_or_path", "unknown")
    prompt = config.get("validation_prompt", "")
    return (
        "---\n"
        "license: other\n"
        f"base_model: {base}\n"
        "tags:\n  - simpletuner\n  - lora\n  - sandbox-placeholder\n"
        "---\n\n"
        f"# {config.get('tracker_run_name', job_name)}\n\n"
        "**Sandbox placeholder.** This LoRA was produced by the simpletuner-cloud sandbox, an offline "
        "Replicate emulator. It contains zeros, not trained weights.\n\n"
        f"- Model family: {family}\n- Steps: {total_steps}\n- Job: {job_name}\n"
        + (f"- Validation prompt: {prompt}\n" if prompt else "")
    )


PLACEHOLDER_CACHE = b"simpletuner-cloud sandbox placeholder cache entry: not a real latent or embedding\n"


def placeholder_png(width: int = 8, height: int = 8) -> bytes:
    """A small grey PNG whose text chunk says it is a placeholder, not a generated image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))  # filter 0, 8-bit grey
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    comment = b"Comment\x00simpletuner-cloud sandbox placeholder: grey pixels, not a generated image"
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", comment)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _lora_rank(config: dict[str, Any]) -> int:
    try:
        return int(config.get("lora_rank", 16))
    except (TypeError, ValueError):
        return 16


class OutputFolder:
    """The run's output folder as the real trainer fills it: caches first, then checkpoints (old
    ones pruned to `checkpoints_total_limit`) and validation images during training, and the final
    weights with a model card at the end. `config` is the resolved config (bare keys)."""

    def __init__(self, root: Path, config: dict[str, Any], job_name: str, total_steps: int) -> None:
        self.root = root
        self.config = config
        self.job_name = job_name
        self.total_steps = total_steps
        self.root.mkdir(parents=True, exist_ok=True)

    def _write(self, relative: str, data: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def write_caches(self, samples: int, *, vae: bool, text: bool) -> None:
        """The generated dataset's VAE cache (`<output_dir>/vae-cache`) and the default text-embeds
        cache (`<output_dir>/cache/text/<family>`), one small placeholder file per sample."""
        family = str(self.config.get("model_family") or "flux")
        for index in range(1, max(samples, 1) + 1):
            if vae:
                self._write(f"vae-cache/1.0/sample-{index:04d}.pt", PLACEHOLDER_CACHE)
            if text:
                self._write(f"cache/text/{family}/caption-{index:04d}.pt", PLACEHOLDER_CACHE)

    def save_checkpoint(self, step: int, limit: int) -> list[str]:
        """`checkpoint-<step>/` with placeholder weights; older checkpoints beyond `limit` (0: no
        limit) are removed first, as the trainer does, so at most `limit` remain. Returns its files."""
        existing = sorted(
            (p for p in self.root.glob("checkpoint-*") if _ascii_number(p.name.removeprefix("checkpoint-"))),
            key=lambda p: int(p.name.removeprefix("checkpoint-")),
        )
        if limit > 0:
            for old in existing[: max(len(existing) - limit + 1, 0)]:
                shutil.rmtree(old, ignore_errors=True)
        family, rank = str(self.config.get("model_family", "flux")), _lora_rank(self.config)
        folder = f"checkpoint-{step}"
        state = {"global_step": step, "max_train_steps": self.total_steps, "sandbox_placeholder": True}
        self._write(f"{folder}/pytorch_lora_weights.safetensors", placeholder_lora(family, rank))
        self._write(f"{folder}/training_state.json", json.dumps(state, sort_keys=True).encode())
        return [f"{folder}/pytorch_lora_weights.safetensors", f"{folder}/training_state.json"]

    def write_validation_image(self, step: int, resolution: str) -> str:
        relative = f"validation_images/step_{step}_validation_{resolution}.png"
        self._write(relative, placeholder_png())
        return relative

    def save_final(self) -> list[tuple[str, Path]]:
        """The final save: weights at the folder's root and the model card (never sent to S3)."""
        family, rank = str(self.config.get("model_family", "flux")), _lora_rank(self.config)
        weights = self._write("pytorch_lora_weights.safetensors", placeholder_lora(family, rank))
        card = self._write("README.md", model_card(self.config, self.job_name, self.total_steps).encode())
        return [("pytorch_lora_weights.safetensors", weights), ("README.md", card)]

    def files(self) -> list[tuple[str, Path]]:
        """Every file in the folder now, as (relative key, path), sorted."""
        return sorted(
            (path.relative_to(self.root).as_posix(), path) for path in self.root.rglob("*") if path.is_file()
        )


def s3_output_url(inputs: dict[str, Any]) -> str:
    base_path = (inputs.get("s3_base_path") or "simpletuner").strip("/")
    if inputs.get("s3_public_base_url"):
        return f"{inputs['s3_public_base_url'].rstrip('/')}/{base_path}"
    if inputs.get("s3_endpoint_url"):
        return f"{inputs['s3_endpoint_url'].rstrip('/')}/{inputs['s3_bucket']}/{base_path}"
    return f"s3://{inputs['s3_bucket']}/{base_path}"


def normalise_hub_id(value: str) -> str:
    text = value.strip()
    for prefix in (
        "https://huggingface.co/",
        "http://huggingface.co/",
        "https://hf.co/",
        "hf.co/",
        "huggingface.co/",
    ):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return "/".join(text.strip("/").split("/")[:2])


def upload_to_s3(inputs: dict[str, Any], folder_name: str, files: list[tuple[str, Path]]) -> list[str]:
    """Blocking; run it in a thread. Returns the object keys written. Raises on any failure."""
    import boto3

    session = boto3.session.Session()
    client = session.client(
        "s3",
        endpoint_url=inputs.get("s3_endpoint_url") or None,
        region_name=inputs.get("s3_region") or None,
        aws_access_key_id=inputs.get("s3_access_key") or None,
        aws_secret_access_key=inputs.get("s3_secret_key") or None,
    )
    base_path = (inputs.get("s3_base_path") or "simpletuner").strip("/")
    keys = []
    for relative, path in files:
        key = f"{base_path}/{folder_name}/{relative}"
        client.upload_file(str(path), inputs["s3_bucket"], key)
        keys.append(key)
    return keys
