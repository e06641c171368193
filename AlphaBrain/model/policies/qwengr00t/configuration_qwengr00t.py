"""The YAML blocks of QwenGR00T (`framework.name: QwenGR00T`):

    framework:
      qwenvl:        {base_vlm, init, size, image_size, system_prompt, attn_implementation,
                      gradient_checkpointing, dtype, max_text_tokens}
                     -> QwenVLConfig (model/backbones/qwen2_5_vl.py)
      action_model:  {action_horizon, hidden_size, num_layers, num_heads, mlp_ratio, state_hidden_size,
                      interleave_self_attention, dropout, repeated_diffusion_steps, num_inference_timesteps,
                      noise_beta_alpha, noise_beta_beta, noise_s, timestep_scale}
                     -> FlowMatchingConfig (model/modules/flow_matching_head.py)

Neither block is specific to this policy: the backbone block is shared with
NeuroVLA, and the head's block lives with the head.
"""

from AlphaBrain.model.backbones.qwen2_5_vl import QwenVLConfig
from AlphaBrain.model.modules.flow_matching_head import FlowMatchingConfig

__all__ = ["FlowMatchingConfig", "QwenVLConfig"]
