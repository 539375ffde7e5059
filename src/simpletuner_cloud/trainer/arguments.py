"""The trainer's command-line arguments, so an unknown `config_json` key is refused here instead of
by the real trainer's parser (which fails the paid run and logs its raw arguments, secrets included;
trainer-contract §2.1). The names are SimpleTuner's `--help` listing as `documentation/OPTIONS.md`
prints it, with the deprecated aliases it documents and the settings the cog forces or reads; a newer
trainer may know more, so `SIMPLETUNER_EXTRA_TRAINER_ARGUMENTS` (comma separated) extends the list.

A few well-known arguments also have the type or choices the parser enforces (SimpleTuner's field
registry as the same listing prints it), and the trainer refuses a run nothing sizes: values it cannot
read are refused here too, by name (`trainer_argument_invalid`)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from simpletuner_cloud.errors import CloudError

_NAMES = """
accelerator_cache_clear_interval adam_beta1 adam_beta2 adam_epsilon adam_weight_decay
aspect_bucket_alignment aspect_bucket_disable_rebuild aspect_bucket_rounding aspect_bucket_worker_count
attention_mechanism aws_max_pool_connections base_model_default_dtype base_model_precision cache_dir
cache_dir_text cache_dir_vae caption_dropout_probability caption_strategy checkpoint_epoch_interval
checkpoint_step_interval checkpointing_rolling_steps checkpointing_steps checkpointing_use_tempdir
checkpoints_rolling_total_limit checkpoints_total_limit compress_disk_cache
conditioning_multidataset_sampling control controlnet controlnet_custom_config controlnet_model_name_or_path
data_aesthetic_score data_backend_config data_backend_sampling dataloader_prefetch dataloader_prefetch_qlen
debug_aspect_buckets debug_dataset_loader delete_invalid_checkpoints delete_problematic_images
delete_unwanted_images disable_benchmark disable_bucket_pruning disable_segmented_timestep_sampling
disable_tf32 disk_low_action disk_low_script disk_low_threshold distillation_config distillation_method
dynamo_backend dynamo_dynamic dynamo_fullgraph dynamo_mode dynamo_use_regional_compilation ema_cpu_only
ema_decay ema_device ema_foreach_disable ema_update_interval ema_validation enable_group_offload
enable_multiprocessing enable_nsfw_check enable_watermark eval_dataset_id eval_dataset_pooling
eval_epoch_interval eval_steps_interval eval_timesteps evaluation_type flow_beta_schedule_alpha
flow_beta_schedule_beta flow_custom_timesteps flow_schedule_auto_shift flow_schedule_shift
flow_sigmoid_scale flow_timesteps_mode flow_use_beta_schedule flow_use_uniform_schedule
flux_attention_masked_training flux_fast_schedule flux_guidance_max flux_guidance_min flux_guidance_mode
flux_guidance_value flux_lora_target framerate freeze_encoder_after freeze_encoder_before
freeze_encoder_strategy fsdp_enable fsdp_state_dict_type fully_unload_text_encoder fuse_optimizer
fuse_qkv_projections grad_clip_method gradient_accumulation_steps gradient_checkpointing
gradient_checkpointing_interval gradient_precision group_offload_blocks_per_group group_offload_to_disk_path
group_offload_type group_offload_use_stream hidream_load_balancing_loss_weight
hidream_use_load_balancing_loss hub_model_id huber_c huber_schedule i_know_what_i_am_doing
ignore_final_epochs ignore_missing_files image_processing_batch_size inference_scheduler_timestep_spacing
init_lokr_norm init_lora input_perturbation input_perturbation_steps instance_prompt keep_vae_loaded
layer_freeze_strategy layersync_lambda layersync_student_block layersync_teacher_block learning_rate
local_rank logging_dir lora_alpha lora_dropout lora_format lora_init_type lora_rank lora_type loss_type
lr_end lr_num_cycles lr_power lr_scale lr_scale_sqrt lr_scheduler lr_warmup_steps ltx_i2v_prob
ltx_partial_noise_fraction ltx_protect_first_frame ltx_train_mode lycoris_config masked_loss_probability
max_grad_norm max_train_steps max_upscale_threshold max_workers maximum_image_size metadata_update_interval
minimum_image_size mixed_precision model_card_note model_card_private model_card_safe_for_work model_family
model_flavour model_type modelspec_comment noise_offset noise_offset_probability nsfw_check_backend_types
nsfw_check_min_votes nsfw_check_models nsfw_check_sample_types num_eval_images num_machines num_processes
num_train_epochs num_validation_images offload_during_save offload_during_startup offload_param_path
offset_noise only_instance_prompt optimizer optimizer_beta1 optimizer_beta2 optimizer_config
optimizer_cpu_offload_method optimizer_offload_gradients optimizer_release_gradients output_dir
override_dataset_config parquet_caption_column parquet_filename_column peft_lora_mode
peft_lora_target_modules prediction_type prepend_instance_prompt preserve_data_backend_cache
pretrained_evaluation_model_name_or_path pretrained_gemma_model_name_or_path pretrained_model_name_or_path
pretrained_t5_model_name_or_path pretrained_transformer_model_name_or_path pretrained_transformer_subfolder
pretrained_unet_model_name_or_path pretrained_unet_subfolder pretrained_vae_model_name_or_path
print_filenames print_sampler_statistics prodigy_steps publishing_config push_checkpoints_to_hub push_to_hub
push_to_hub_background quantization_config quantize_activations quantize_via ramtorch ramtorch_controlnet
ramtorch_target_modules ramtorch_text_encoder ramtorch_vae read_batch_size refiner_training
refiner_training_invert_schedule refiner_training_strength report_to rescale_betas_zero_snr resolution
resolution_type resume_from_checkpoint revision sageattention_usage sana_complex_human_instruction
save_text_encoder sd3_clip_uncond_behaviour sd3_t5_uncond_behaviour sdxl_refiner_uses_full_range seed
seed_for_each_device set_grads_to_none singlora_ramp_up_steps skip_file_discovery sla_config
slider_lora_target snr_gamma snr_weight soft_min_snr_sigma_data t5_padding target_downsample_size
text_encoder_1_precision text_encoder_2_precision text_encoder_3_precision text_encoder_4_precision
text_encoder_limit text_encoder_lr timestep_bias_begin timestep_bias_end timestep_bias_multiplier
timestep_bias_portion timestep_bias_strategy tokenizer_max_length torch_num_threads tracker_image_layout
tracker_project_name tracker_run_name train_batch_size train_text_encoder
training_scheduler_timestep_spacing tread_config unet_attention_slice use_dora use_ema use_soft_min_snr
user_prompt_library vae_batch_size vae_cache_disable vae_cache_ondemand vae_cache_scan_behaviour vae_dtype
vae_enable_patch_conv vae_enable_slicing vae_enable_tiling validation_audio_only validation_disable
validation_disable_unconditional validation_epoch_interval validation_guidance validation_guidance_real
validation_guidance_rescale validation_guidance_skip_layers validation_guidance_skip_layers_start
validation_guidance_skip_layers_stop validation_guidance_skip_scale validation_lycoris_strength
validation_negative_prompt validation_no_cfg_until_timestep validation_noise_scheduler
validation_num_inference_steps validation_num_video_frames validation_on_startup validation_prompt
validation_prompt_library validation_randomize validation_resolution validation_seed validation_seed_source
validation_step_interval validation_steps validation_stitch_input_location validation_torch_compile
validation_using_datasets variant webhook_config webhook_reporting_interval write_batch_size
""".split()

KNOWN_ARGUMENTS: frozenset[str] = frozenset(_NAMES)


def normalise_key(key: str) -> str:
    """`--max_train_steps` and `max_train_steps` are one argument to the trainer."""
    return key[2:] if key.startswith("--") else key


def unknown_arguments(options: Mapping[str, Any], extra: Iterable[str] = ()) -> list[str]:
    known = KNOWN_ARGUMENTS | {normalise_key(name.strip()) for name in extra if name.strip()}
    return sorted(key for key in options if normalise_key(str(key)) not in known)


def check_trainer_arguments(options: Mapping[str, Any], extra: Iterable[str] = ()) -> None:
    """Raises `trainer_argument_unknown` naming every key the trainer's parser would reject."""
    unknown = unknown_arguments(options, extra)
    if not unknown:
        return
    suggestions = {
        name: close[0]
        for name in unknown
        if (close := difflib.get_close_matches(normalise_key(name), KNOWN_ARGUMENTS, n=1, cutoff=0.8))
    }
    named = ", ".join(f"`{name}`" for name in unknown)
    hint = "Remove or rename it in config.json before submitting; the trainer's parser rejects unknown keys."
    if suggestions:
        guesses = ", ".join(f"`{close}` for `{name}`" for name, close in suggestions.items())
        hint = f"Did you mean {guesses}? {hint}"
    hint += (
        " If your trainer version does know it, add it to SIMPLETUNER_EXTRA_TRAINER_ARGUMENTS "
        "(comma separated) and restart the server."
    )
    raise CloudError(
        f"The trainer does not know the config option{'s' if len(unknown) > 1 else ''} {named}; the run "
        "would fail at start (and the trainer would print its raw arguments, secrets included).",
        code="trainer_argument_unknown",
        hint=hint,
        details={"unknown": unknown, "suggestions": suggestions},
    )


# The parser's types and choices for the few arguments whose type the references state; kept apart
# from the sandbox's table (sandbox/trainer_options.py) like the names are.
INT_ARGUMENTS = frozenset(
    {
        "max_train_steps",
        "num_train_epochs",
        "train_batch_size",
        "gradient_accumulation_steps",
        "checkpoints_total_limit",
    }
)
FLOAT_ARGUMENTS = frozenset({"learning_rate"})
BOOL_ARGUMENTS = frozenset({"gradient_checkpointing", "disable_benchmark", "use_ema", "use_dora"})
MODEL_FAMILIES = (
    "kolors", "auraflow", "omnigen", "flux", "deepfloyd", "cosmos2image", "sana", "qwen_image",
    "pixart_sigma",
    "sdxl", "sd1x", "sd2x", "wan", "hidream", "sd3", "lumina2", "ltxvideo",
)  # fmt: skip
CHOICES: dict[str, tuple[str, ...]] = {
    "model_type": ("full", "lora"),
    "lora_type": ("standard", "lycoris"),
    "resolution_type": ("pixel", "area", "pixel_area"),
}
_BOOL_TEXT = frozenset({"1", "true", "yes", "y", "on", "0", "false", "no", "n", "off"})


def _passed(value: Any) -> list[str | None]:
    """What the cog puts on the command line for a value: nothing for null, false, "false" or blank
    text; a bare flag (None) for true or "true"; one argument per list item; dicts stay off it."""
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


def _problem(name: str, text: str | None, choices: dict[str, tuple[str, ...]]) -> str | None:
    if name in BOOL_ARGUMENTS:
        return None if text is None or text.lower() in _BOOL_TEXT else f"must be true or false, got {text!r}"
    typed = name in INT_ARGUMENTS or name in FLOAT_ARGUMENTS or name in choices
    if text is None:
        return "needs a value, not true" if typed else None
    for names, kind, word in ((INT_ARGUMENTS, int, "an integer"), (FLOAT_ARGUMENTS, float, "a number")):
        if name in names:
            try:
                kind(text)
            except ValueError:
                return f"must be {word}, got {text!r}"
    if name in choices:
        text = text.strip().lower() if name == "model_family" else text
        if text not in choices[name]:
            return f"must be one of {', '.join(choices[name])}; got {text!r}"
    return None


def _invalid(name: str, problem: str, hint: str) -> CloudError:
    return CloudError(
        f"Config option `{name}` {problem}; the trainer would fail the run at start.",
        code="trainer_argument_invalid",
        hint=hint,
        details={"argument": name, "problem": problem},
    )


def check_argument_values(options: Mapping[str, Any], extra_families: Iterable[str] | None = ()) -> None:
    """Raises `trainer_argument_invalid` for the first value the trainer's parser could not read
    (config order, as the parser meets them), or a missing `model_family`. `extra_families` extends
    the known families; None leaves the family's value unchecked (a caller that cannot know them)."""
    families = MODEL_FAMILIES + tuple(name.strip().lower() for name in extra_families or () if name.strip())
    choices = CHOICES if extra_families is None else {**CHOICES, "model_family": families}
    passed: dict[str, str | None] = {}
    for key, value in options.items():
        name = normalise_key(str(key))
        for text in _passed(value):
            passed[name] = text
            problem = _problem(name, text, choices)
            if problem is None:
                continue
            hint = "Fix the value in config.json."
            if name == "model_family":
                hint = (
                    f"Use one of the trainer's model families ({', '.join(families)}). If your trainer "
                    "version knows a newer one, add it to SIMPLETUNER_EXTRA_MODEL_FAMILIES (comma "
                    "separated) and restart the server."
                )
            elif name in INT_ARGUMENTS:
                hint = "Write a whole number without quotes or a decimal point (e.g. 1000, not 1000.0)."
            raise _invalid(name, problem, hint)
    if "model_family" not in passed:
        raise _invalid(
            "model_family",
            "is missing",
            f"Set model_family in config.json (one of {', '.join(families)}); the trainer requires it.",
        )


def check_lycoris(options: Mapping[str, Any], lycoris: Any) -> None:
    """`lora_type: lycoris` needs its JSON, sent inline (a path on this disk is not in the container)."""
    if str(options.get("lora_type") or "").strip().lower() != "lycoris":
        return
    if not isinstance(lycoris, dict):
        raise _invalid(
            "lycoris_config",
            "is missing (lora_type is lycoris)",
            "lora_type is lycoris: put lycoris_config.json beside config.json (it is sent inline as the "
            "trainer's lycoris_config input), or set lora_type to standard.",
        )


def check_run_length(options: Mapping[str, Any]) -> None:
    """The run the trainer is asked for has a length: `max_train_steps` above 0 (the client then
    sends `num_train_epochs: 0`, as the trainer requires) or `num_train_epochs` above 0. Both 0, both
    missing, or a negative value would fail the paid run (or, with both missing, train one epoch of a
    length nobody chose)."""
    steps = _number(options, "max_train_steps")
    epochs = _number(options, "num_train_epochs")
    for name, value in (("max_train_steps", steps), ("num_train_epochs", epochs)):
        if value is not None and value < 0:
            raise _invalid(name, f"is below 0 ({value})", "Set max_train_steps above 0 in config.json.")
    if steps or epochs:
        return
    name = "max_train_steps"
    problem = (
        f"is {'missing' if steps is None else steps} and num_train_epochs is "
        f"{'missing' if epochs is None else epochs}"
    )
    raise CloudError(
        f"The run has no length: `{name}` {problem}; the trainer needs max_train_steps or "
        "num_train_epochs above 0.",
        code="trainer_argument_invalid",
        hint="Set max_train_steps in config.json (or pass --max-train-steps), e.g. 1000 for a Flux LoRA.",
        details={"argument": name, "problem": problem},
    )


def _number(options: Mapping[str, Any], name: str) -> int | None:
    texts = [
        text for key, value in options.items() if normalise_key(str(key)) == name for text in _passed(value)
    ]
    if not texts or texts[-1] is None:
        return None
    try:
        return int(texts[-1])
    except ValueError:
        return None  # check_argument_values names it
