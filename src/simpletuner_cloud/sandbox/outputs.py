"""What the simulated trainer produces and publishes: a clearly labelled placeholder LoRA in
safetensors format with the tensor names of the model family, a model card, the resolved config;
S3 uploads with boto3 (as the real trainer does), and the output string of trainer-contract 1.2."""

from __future__ import annotations

import json
import struct
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


def write_outputs(
    job_dir: Path, config: dict[str, Any], job_name: str, total_steps: int
) -> list[tuple[str, Path]]:
    """Writes the files and returns (key relative to the job folder, local path) pairs. `config` is
    the resolved config, whose keys carry no leading `--`."""
    checkpoint = job_dir / f"checkpoint-{total_steps}"
    checkpoint.mkdir(parents=True, exist_ok=True)
    weights = checkpoint / "pytorch_lora_weights.safetensors"
    try:
        rank = int(config.get("lora_rank", 16))
    except (TypeError, ValueError):
        rank = 16
    weights.write_bytes(placeholder_lora(str(config.get("model_family", "flux")), rank))
    card = job_dir / "README.md"
    card.write_text(model_card(config, job_name, total_steps), encoding="utf-8")
    resolved = job_dir / "config.json"
    resolved.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
    return [
        (f"checkpoint-{total_steps}/pytorch_lora_weights.safetensors", weights),
        ("README.md", card),
        ("config.json", resolved),
    ]


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


def upload_to_s3(inputs: dict[str, Any], job_name: str, files: list[tuple[str, Path]]) -> list[str]:
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
        key = f"{base_path}/{job_name}/{relative}"
        client.upload_file(str(path), inputs["s3_bucket"], key)
        keys.append(key)
    return keys
