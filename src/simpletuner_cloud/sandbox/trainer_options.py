"""The option names the simulated trainer's parser knows, and the failure it prints for any other
`config_json` key (trainer-contract 2.1: unknown keys make the parser reject the run, and the parse
failure logs the raw argument list, S3 keys from the Secret inputs included).

The names are SimpleTuner's own `--help` listing as `documentation/OPTIONS.md` prints it (usage and
options), plus the deprecated aliases it documents, the NSFW settings the cog forces, and the launch
settings the cog reads. They are kept apart from the client's list in `trainer/` on purpose: the
sandbox stands for the trainer, so a name our client wrongly accepts fails here like it would there.
A newer trainer may know more; `SandboxConfig.extra_trainer_options` adds names.

A few well-known options also carry the type or choices the parser enforces (SimpleTuner's field
registry, as the same `--help` listing prints it: `{a,b}` for choices, `[--name [NAME]]` for booleans):
a value argparse cannot convert fails the run like an unknown key does."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

_HELP_NAMES = """
model_family model_flavour controlnet pretrained_model_name_or_path output_dir logging_dir model_type
seed resolution resume_from_checkpoint prediction_type pretrained_vae_model_name_or_path vae_dtype
vae_cache_ondemand vae_cache_disable accelerator_cache_clear_interval aspect_bucket_rounding
base_model_precision text_encoder_1_precision text_encoder_2_precision text_encoder_3_precision
text_encoder_4_precision gradient_checkpointing_interval offload_during_startup quantize_via
quantization_config fuse_qkv_projections control controlnet_custom_config controlnet_model_name_or_path
tread_config pretrained_transformer_model_name_or_path pretrained_transformer_subfolder
pretrained_unet_model_name_or_path pretrained_unet_subfolder pretrained_t5_model_name_or_path
pretrained_gemma_model_name_or_path revision variant base_model_default_dtype unet_attention_slice
num_train_epochs max_train_steps train_batch_size learning_rate optimizer optimizer_config lr_scheduler
gradient_accumulation_steps lr_warmup_steps checkpoints_total_limit gradient_checkpointing
train_text_encoder text_encoder_lr lr_num_cycles lr_power use_soft_min_snr use_ema ema_device
ema_cpu_only ema_update_interval ema_foreach_disable ema_decay lora_rank lora_alpha lora_type
lora_dropout lora_init_type peft_lora_mode peft_lora_target_modules singlora_ramp_up_steps
slider_lora_target init_lora lycoris_config init_lokr_norm flux_lora_target use_dora resolution_type
data_backend_config caption_strategy conditioning_multidataset_sampling instance_prompt
parquet_caption_column parquet_filename_column ignore_missing_files vae_cache_scan_behaviour
vae_enable_slicing vae_enable_tiling vae_enable_patch_conv vae_batch_size caption_dropout_probability
tokenizer_max_length validation_step_interval validation_epoch_interval disable_benchmark
validation_prompt num_validation_images num_eval_images eval_steps_interval eval_epoch_interval
eval_timesteps eval_dataset_pooling evaluation_type pretrained_evaluation_model_name_or_path
validation_guidance validation_num_inference_steps validation_on_startup validation_using_datasets
validation_torch_compile validation_guidance_real validation_no_cfg_until_timestep
validation_negative_prompt validation_randomize validation_seed validation_disable
validation_prompt_library user_prompt_library eval_dataset_id validation_stitch_input_location
validation_guidance_rescale validation_disable_unconditional validation_guidance_skip_layers
validation_guidance_skip_layers_start validation_guidance_skip_layers_stop validation_guidance_skip_scale
validation_lycoris_strength validation_noise_scheduler validation_num_video_frames validation_audio_only
validation_resolution validation_seed_source i_know_what_i_am_doing flow_sigmoid_scale
flux_fast_schedule flow_use_uniform_schedule flow_use_beta_schedule flow_beta_schedule_alpha
flow_beta_schedule_beta flow_schedule_shift flow_schedule_auto_shift flow_custom_timesteps
flow_timesteps_mode flux_guidance_mode flux_attention_masked_training flux_guidance_value
flux_guidance_min flux_guidance_max t5_padding sd3_clip_uncond_behaviour sd3_t5_uncond_behaviour
soft_min_snr_sigma_data mixed_precision attention_mechanism sageattention_usage disable_tf32
set_grads_to_none noise_offset noise_offset_probability input_perturbation input_perturbation_steps
lr_end lr_scale lr_scale_sqrt ignore_final_epochs freeze_encoder_before freeze_encoder_after
freeze_encoder_strategy layer_freeze_strategy fully_unload_text_encoder save_text_encoder
text_encoder_limit prepend_instance_prompt only_instance_prompt data_aesthetic_score
delete_unwanted_images delete_problematic_images disable_bucket_pruning
disable_segmented_timestep_sampling preserve_data_backend_cache override_dataset_config cache_dir
cache_dir_text cache_dir_vae compress_disk_cache aspect_bucket_disable_rebuild keep_vae_loaded
skip_file_discovery data_backend_sampling image_processing_batch_size write_batch_size read_batch_size
enable_multiprocessing max_workers aws_max_pool_connections torch_num_threads dataloader_prefetch
dataloader_prefetch_qlen aspect_bucket_worker_count aspect_bucket_alignment minimum_image_size
maximum_image_size target_downsample_size max_upscale_threshold metadata_update_interval
debug_aspect_buckets debug_dataset_loader print_filenames print_sampler_statistics
timestep_bias_strategy timestep_bias_begin timestep_bias_end timestep_bias_multiplier
timestep_bias_portion training_scheduler_timestep_spacing inference_scheduler_timestep_spacing loss_type
huber_schedule huber_c snr_gamma masked_loss_probability hidream_use_load_balancing_loss
hidream_load_balancing_loss_weight adam_beta1 adam_beta2 optimizer_beta1 optimizer_beta2
optimizer_cpu_offload_method gradient_precision adam_weight_decay adam_epsilon prodigy_steps
max_grad_norm grad_clip_method optimizer_offload_gradients fuse_optimizer optimizer_release_gradients
push_to_hub push_to_hub_background push_checkpoints_to_hub publishing_config hub_model_id
model_card_private model_card_safe_for_work model_card_note modelspec_comment report_to
checkpoint_step_interval checkpoint_epoch_interval checkpointing_rolling_steps checkpointing_use_tempdir
delete_invalid_checkpoints checkpoints_rolling_total_limit tracker_run_name tracker_project_name
tracker_image_layout enable_watermark framerate seed_for_each_device snr_weight rescale_betas_zero_snr
webhook_config webhook_reporting_interval distillation_method distillation_config ema_validation
local_rank ltx_train_mode ltx_i2v_prob ltx_partial_noise_fraction ltx_protect_first_frame
offload_param_path offset_noise quantize_activations refiner_training refiner_training_invert_schedule
refiner_training_strength sdxl_refiner_uses_full_range sana_complex_human_instruction
"""

# Named elsewhere in OPTIONS.md (sections with their own headings, deprecated aliases), forced by
# the cog (NSFW), or read by the cog's launcher (process count, torch.compile settings).
_DOCUMENTED_NAMES = """
checkpointing_steps validation_steps lora_format offload_during_save enable_group_offload
group_offload_type group_offload_blocks_per_group group_offload_use_stream group_offload_to_disk_path
ramtorch ramtorch_target_modules ramtorch_text_encoder ramtorch_vae ramtorch_controlnet sla_config
layersync_student_block layersync_teacher_block layersync_lambda disk_low_threshold disk_low_action
disk_low_script fsdp_enable fsdp_state_dict_type enable_nsfw_check nsfw_check_models
nsfw_check_min_votes nsfw_check_backend_types nsfw_check_sample_types num_processes num_machines
dynamo_backend dynamo_mode dynamo_fullgraph dynamo_dynamic dynamo_use_regional_compilation
"""

KNOWN_OPTIONS: frozenset[str] = frozenset((_HELP_NAMES + _DOCUMENTED_NAMES).split())

# `type=int`/`type=float` in the field registry (its NUMBER fields with integer or float defaults).
INT_OPTIONS = frozenset(
    {
        "max_train_steps",
        "num_train_epochs",
        "train_batch_size",
        "gradient_accumulation_steps",
        "checkpoints_total_limit",
    }
)
FLOAT_OPTIONS = frozenset({"learning_rate"})
# Checkbox fields: `nargs="?"`, `const=True`, parsed by SimpleTuner's `_parse_bool_flag`.
BOOL_OPTIONS = frozenset({"gradient_checkpointing", "disable_benchmark", "use_ema", "use_dora"})
CHOICES: dict[str, tuple[str, ...]] = {
    "model_family": (
        "kolors", "auraflow", "omnigen", "flux", "deepfloyd", "cosmos2image", "sana", "qwen_image",
        "pixart_sigma", "sdxl", "sd1x", "sd2x", "wan", "hidream", "sd3", "lumina2", "ltxvideo",
    ),
    "model_type": ("full", "lora"),
    "lora_type": ("standard", "lycoris"),
    "resolution_type": ("pixel", "area", "pixel_area"),
}  # fmt: skip
REQUIRED_OPTIONS = ("model_family",)  # `required=True`: argparse refuses a run without it
_BOOL_TRUE = frozenset({"1", "true", "yes", "y", "on"})
_BOOL_FALSE = frozenset({"0", "false", "no", "n", "off"})


def passed_values(value: Any) -> list[str | None]:
    """What the cog's `mapping_to_cli_args` hands argparse for one config value: nothing for
    null, false, `"false"` or blank text; a bare `--key` (None here) for true or `"true"`; one
    `--key=item` per list item; dicts never reach the command line."""
    if value is None or isinstance(value, dict):
        return []
    if isinstance(value, bool):
        return [None] if value else []
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    text = str(value).strip()
    if not text or text.lower() == "false":
        return []
    return [None] if text.lower() == "true" else [text]


def _value_problem(name: str, text: str | None) -> str | None:
    """argparse's complaint about one `--name[=text]`, as `ArgumentError` words it."""
    if name in BOOL_OPTIONS:
        if text is None or text.lower() in _BOOL_TRUE | _BOOL_FALSE:
            return None
        return f"Expected a boolean value, got {text!r}"
    typed = name in INT_OPTIONS or name in FLOAT_OPTIONS or name in CHOICES
    if text is None:
        return "expected one argument" if typed else None
    if name in INT_OPTIONS or name in FLOAT_OPTIONS:
        kind = int if name in INT_OPTIONS else float
        try:
            kind(text)
        except ValueError:
            return f"invalid {kind.__name__} value: {text!r}"
    if name in CHOICES:
        if name == "model_family":  # the trainer lowercases it before parsing
            text = text.strip().lower()
        if text not in CHOICES[name]:
            allowed = ", ".join(repr(choice) for choice in CHOICES[name])
            return f"invalid choice: {text!r} (choose from {allowed})"
    return None


def parsed_value(merged: dict[str, Any], name: str) -> str | None:
    """The text argparse keeps for `--name` (the last one passed), or None when it is not passed
    or passed bare."""
    found: str | None = None
    for key, value in merged.items():
        if str(key).removeprefix("--") == name:
            for text in passed_values(value):
                found = text
    return found


def argument_error(merged: dict[str, Any], unknown: list[str]) -> str | None:
    """argparse's first complaint, in its order: a value it cannot convert or that is outside its
    choices (in argument order), then a missing required option, then unrecognized arguments."""
    passed: set[str] = set()
    for key, value in merged.items():
        name = str(key).removeprefix("--")
        for text in passed_values(value):
            passed.add(name)
            problem = _value_problem(name, text)
            if problem:
                return f"argument --{name}: {problem}"
    missing = [f"--{name}" for name in REQUIRED_OPTIONS if name not in passed]
    if missing:
        return f"the following arguments are required: {', '.join(missing)}"
    return unrecognized_message(unknown, merged) if unknown else None


def unknown_options(config: dict[str, Any], extra: Iterable[str] = ()) -> list[str]:
    """The config's keys the parser would not recognise, as the `--key` it would be handed, in the
    config's order (argparse reports them in argument order)."""
    known = KNOWN_OPTIONS | {name.strip().removeprefix("--") for name in extra}
    return [f"--{str(key).removeprefix('--')}" for key in config if str(key).removeprefix("--") not in known]


def cli_value(value: Any) -> str:
    """How the cog renders a config value on the command line: JSON for structures, lowercase
    booleans, everything else as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def raw_arguments(merged: dict[str, Any]) -> list[str]:
    """The argument list the parser is given: one `--key=value` per merged key, in dictionary order."""
    return [f"--{str(key).removeprefix('--')}={cli_value(value)}" for key, value in merged.items()]


def unrecognized_message(unknown: list[str], merged: dict[str, Any]) -> str:
    """argparse's message names each unrecognised argument as it was passed."""
    passed = {f"--{str(key).removeprefix('--')}": value for key, value in merged.items()}
    return "unrecognized arguments: " + " ".join(f"{name}={cli_value(passed[name])}" for name in unknown)
