"""The trainer's command-line arguments, so an unknown `config_json` key is refused here instead of
by the real trainer's parser (which fails the paid run and logs its raw arguments, secrets included;
trainer-contract §2.1). The names follow SimpleTuner's OPTIONS.md at the contract's commit; a newer
trainer may know more, so `SIMPLETUNER_EXTRA_TRAINER_ARGUMENTS` (comma separated) extends the list."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from simpletuner_cloud.errors import CloudError

_NAMES = """
model_family model_flavour model_type pretrained_model_name_or_path pretrained_vae_model_name_or_path
pretrained_transformer_model_name_or_path pretrained_transformer_subfolder pretrained_unet_model_name_or_path
pretrained_unet_subfolder pretrained_t5_model_name_or_path revision variant vae_path controlnet
controlnet_model_name_or_path controlnet_custom_config tread_config refiner_training refiner_training_strength
refiner_training_invert_schedule lora_type lora_rank lora_alpha lora_dropout lora_init_type lora_format
lycoris_config init_lora flux_lora_target lora_target_modules peft_lora_mode singlora_ramp_up_steps
use_dora base_model_precision base_model_default_dtype text_encoder_1_precision text_encoder_2_precision
text_encoder_3_precision text_encoder_4_precision quantize_via quantize_activations fuse_qkv_projections
mixed_precision gradient_precision attention_mechanism sageattention_usage gradient_checkpointing
gradient_checkpointing_interval gradient_checkpointing_backend layer_group_offloading
layer_group_offloading_target layer_group_offloading_path enable_group_offload group_offload_type
group_offload_blocks_per_group group_offload_use_stream group_offload_to_disk_path
musubi_blocks_to_swap musubi_block_swap_device ramtorch ramtorch_target_modules
train_batch_size gradient_accumulation_steps max_train_steps num_train_epochs ignore_final_epochs
learning_rate lr_scheduler lr_warmup_steps lr_num_cycles lr_power lr_end lr_scale lr_scale_sqrt
optimizer optimizer_config optimizer_beta1 optimizer_beta2 optimizer_cpu_offload_method
optimizer_offload_gradients optimizer_release_gradients adam_beta1 adam_beta2 adam_weight_decay adam_epsilon
prodigy_steps max_grad_norm grad_clip_method use_ema ema_device ema_cpu_only ema_update_interval ema_decay
ema_foreach_disable ema_validation seed seed_for_each_device resolution resolution_type
minimum_image_size maximum_image_size target_downsample_size crop crop_style crop_aspect crop_aspect_buckets
aspect_bucket_rounding aspect_bucket_alignment caption_dropout_probability caption_strategy
instance_prompt tokenizer_max_length t5_padding prediction_type snr_gamma use_soft_min_snr
soft_min_snr_sigma_data input_perturbation input_perturbation_steps noise_offset noise_offset_probability
offset_noise masked_loss_probability loss_type huber_schedule huber_c flow_schedule_shift
flow_schedule_auto_shift flow_sigmoid_scale flow_use_beta_schedule flow_beta_schedule_alpha
flow_beta_schedule_beta flow_use_uniform_schedule flux_guidance_mode flux_guidance_value flux_guidance_min
flux_guidance_max flux_attention_masked_training flux_fast_schedule t5_fp8 sd3_clip_uncond_behaviour
sd3_t5_uncond_behaviour timestep_bias_strategy timestep_bias_multiplier timestep_bias_begin
timestep_bias_end timestep_bias_portion training_scheduler_timestep_spacing
inference_scheduler_timestep_spacing rescale_betas_zero_snr distillation_method distillation_config
checkpoint_step_interval checkpointing_steps checkpoint_epoch_interval checkpoints_total_limit
checkpoints_rolling_steps checkpointing_rolling_steps checkpoints_rolling_total_limit
checkpointing_use_tempdir resume_from_checkpoint save_text_encoder save_optimizer_state
validation_prompt validation_prompt_library user_prompt_library validation_negative_prompt
validation_step_interval validation_steps validation_epoch_interval validation_resolution
validation_guidance validation_guidance_real validation_guidance_rescale validation_guidance_skip_layers
validation_guidance_skip_layers_start validation_guidance_skip_layers_stop validation_guidance_skip_scale
validation_num_inference_steps validation_seed validation_num_video_frames validation_noise_scheduler
validation_torch_compile validation_torch_compile_mode validation_using_datasets validation_disable
validation_disable_unconditional validation_randomize validation_seed_source validation_lycoris_strength
validation_multigpu validation_method validation_external_script validation_external_background
validation_adapter_path validation_adapter_name validation_adapter_strength validation_adapter_mode
validation_adapter_config validation_preview validation_preview_steps num_validation_images
num_eval_images eval_steps_interval eval_epoch_interval eval_timesteps eval_dataset_id
eval_dataset_pooling evaluation_type pretrained_evaluation_model_name_or_path
disable_benchmark disable_validation_step_interval_check
report_to tracker_project_name tracker_run_name tracker_image_layout logging_dir
output_dir data_backend_config publishing_config webhook_config webhook_reporting_interval
push_to_hub push_checkpoints_to_hub hub_model_id model_card_private model_card_safe_for_work
model_card_note modelspec_comment
data_backend_sampling metadata_update_interval cache_dir cache_dir_text cache_dir_vae
vae_cache_scan_behaviour vae_cache_ondemand vae_cache_disable vae_batch_size vae_enable_tiling
vae_enable_slicing vae_dtype text_encoder_cache_ondemand compress_disk_cache
skip_file_discovery preserve_data_backend_cache override_dataset_config delete_unwanted_images
delete_problematic_images disable_bucket_pruning dataloader_prefetch dataloader_prefetch_qlen
aws_max_pool_connections read_batch_size write_batch_size max_workers image_processing_batch_size
torch_num_threads enable_multiprocessing
allow_tf32 disable_tf32 enable_xformers_memory_efficient_attention set_grads_to_none
dynamo_backend dynamo_mode dynamo_fullgraph dynamo_dynamic dynamo_use_regional_compilation
num_processes num_machines main_process_ip main_process_port machine_rank accelerate_config
accelerate_extra_args fsdp_enable fsdp_version fsdp_reshard_after_forward fsdp_state_dict_type
fsdp_cpu_ram_efficient_loading fsdp_auto_wrap_policy fsdp_transformer_layer_cls_to_wrap
fsdp_cpu_offload context_parallel_size deepspeed_config local_rank
train_text_encoder text_encoder_lr freeze_encoder freeze_encoder_before freeze_encoder_after
freeze_encoder_strategy layer_freeze_strategy unet_attention_slice
conditioning_multidataset_sampling controlnet_conditioning_scale
keep_vae_loaded unload_text_encoders quantize_text_encoder encoder_precision
enable_nsfw_check nsfw_check_models nsfw_check_min_votes nsfw_check_backend_types nsfw_check_sample_types
i_know_what_i_am_doing sana_complex_human_instruction lumina_train_with_gpu_ram
mu_param mud_param debug_aspect_buckets print_filenames print_sampler_statistics
local_files_only offload_during_startup log_level seed_for_validation
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
