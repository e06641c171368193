"""A GR00T-N1.5-style flow-matching action head: a small DiT that denoises an action chunk, reading a VLM.

    tokens   = [state token (state MLP)] + [action tokens (linear of the noised chunk)] + learned positions
    blocks   = DiT blocks; the timestep conditions each block through adaptive LayerNorm (scale, shift);
               with `interleave_self_attention` even blocks cross-attend to the VLM hidden states (padding
               masked out) and odd blocks self-attend over the action/state tokens (as GR00T N1.5); without
               it every block does both
    output   = velocity for every action token

Flow matching (t = 0 is pure noise, t = 1 the clean chunk):

    x_t = (1 - t) * noise + t * action          target velocity v = action - noise
    t   = s * (1 - u),  u ~ Beta(noise_beta_alpha, noise_beta_beta)

With alpha 1.5, beta 1 (GR00T's values) u leans towards 1, so training sees
more of the noisy end; s = 0.999 keeps t below 1 where the input would be the
answer itself. `repeated_diffusion_steps` R evaluates every sample R times with
different (noise, t) in one pass; the VLM runs once per sample and the
cross-attention keys/values are projected once and shared by the R copies.
Inference starts from Gaussian noise and takes `num_inference_timesteps`
Euler steps of size 1/N.

Randomness that must be reproducible (inference, distillation outputs) comes
from per-sample seeds (`content_seed`: a hash of the sample's images,
instruction and state), so the same observation always gives the same chunk.

The YAML block is `framework.action_model` (FlowMatchingConfig).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from AlphaBrain.model.core.config import ActionModelConfig
from AlphaBrain.model.core.losses import masked_chunk_loss
from AlphaBrain.model.modules.attention import Attention


@dataclass
class FlowMatchingConfig(ActionModelConfig):
    """`framework.action_model` of a flow-matching framework (defaults: the real-size head, ~0.15 B)."""

    action_horizon: int = 16
    hidden_size: int = 768  # DiT width (GR00T's DiT-B: 12 heads x 64)
    num_layers: int = 16
    num_heads: int = 12
    mlp_ratio: float = 4.0
    state_hidden_size: int = 1024  # width of the state MLP
    interleave_self_attention: bool = True
    dropout: float = 0.0  # > 0 makes action_outputs random in training mode (distillation needs it 0)
    repeated_diffusion_steps: int = 8
    num_inference_timesteps: int = 4
    noise_beta_alpha: float = 1.5
    noise_beta_beta: float = 1.0
    noise_s: float = 0.999
    timestep_scale: float = 1000.0  # t in [0, 1] is scaled before the sinusoidal embedding (DDPM-like range)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_int("hidden_size", 8, 8192)
        self.check_int("num_layers", 1, 64)
        self.check_int("num_heads", 1, 128)
        self.require(
            self.hidden_size % self.num_heads == 0, "hidden_size",
            f"is not divisible by {self._where('num_heads')} = {self.num_heads}.",
        )
        self.check_float("mlp_ratio", 0.5, 16.0)
        self.check_int("state_hidden_size", 4, 8192)
        self.check_bool("interleave_self_attention")
        self.check_float("dropout", 0.0, 0.9)
        self.check_int("repeated_diffusion_steps", 1, 64)
        self.check_int("num_inference_timesteps", 1, 1000)
        self.check_float("noise_beta_alpha", 0.0, 100.0, low_inclusive=False)
        self.check_float("noise_beta_beta", 0.0, 100.0, low_inclusive=False)
        self.check_float("noise_s", 0.5, 1.0)
        self.check_float("timestep_scale", 1.0, 1e6)


# ---- per-sample seeds --------------------------------------------------------------------------------

def content_seed(example: Mapping[str, Any]) -> int:
    """A 63-bit seed from what the policy sees of a sample (images, instruction, state), not its index."""
    h = hashlib.sha256()
    h.update(str(example.get("lang", "")).encode())
    image = example.get("image", [])
    for im in image if isinstance(image, (list, tuple)) else [image]:
        arr = np.ascontiguousarray(np.asarray(im))
        h.update(f"{arr.shape}{arr.dtype}".encode())
        h.update(arr.tobytes())
    if example.get("state") is not None:
        h.update(np.ascontiguousarray(np.asarray(example["state"], dtype=np.float32)).tobytes())
    return int.from_bytes(h.digest()[:8], "little") >> 1


def seeded_normal(seeds: Sequence[int], shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """One standard-normal tensor of `shape` per seed, [len(seeds), *shape]; drawn on CPU so every device agrees."""
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows).to(device=device, dtype=dtype)


# ---- building blocks -----------------------------------------------------------------------------

def timestep_features(t: torch.Tensor, dim: int, scale: float) -> torch.Tensor:
    """Sinusoidal features of t * scale, [N, dim] (dim even)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = (t.float() * scale)[:, None] * freqs[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class _DiTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, vlm_dim: int, mlp_ratio: float, dropout: float, mode: str) -> None:
        super().__init__()
        self.mode = mode  # "cross", "self" or "both"
        # Adaptive LayerNorm: the timestep gives the scale and shift of the first norm (zero-initialized,
        # so every block starts as a plain pre-norm block).
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.ada = nn.Linear(dim, 2 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)
        self.attn = Attention(dim, heads, vlm_dim if mode == "cross" else dim, dropout)
        if mode == "both":
            self.norm_cross = nn.LayerNorm(dim)
            self.cross = Attention(dim, heads, vlm_dim, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Dropout(dropout), nn.Linear(hidden, dim))

    def forward(self, x, temb, ctx, ctx_mask, repeats):
        scale, shift = self.ada(F.silu(temb)).unsqueeze(1).chunk(2, dim=-1)
        h = self.norm1(x) * (1 + scale) + shift
        if self.mode == "cross":
            x = x + self.attn(h, ctx, ctx_mask, repeats)
        else:
            x = x + self.attn(h, h)
            if self.mode == "both":
                x = x + self.cross(self.norm_cross(x), ctx, ctx_mask, repeats)
        return x + self.mlp(self.norm2(x))


# ---- the head ----------------------------------------------------------------------------------------

class FlowMatchingHead(nn.Module):
    """DiT velocity field over an action chunk, conditioned on VLM hidden states, state and time."""

    TIME_FEATURES = 256

    def __init__(self, cfg: FlowMatchingConfig, *, vlm_dim: int, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.horizon, self.action_dim, self.state_dim = cfg.action_horizon, action_dim, state_dim
        dim = cfg.hidden_size
        self.vlm_norm = nn.LayerNorm(vlm_dim)  # VLM states have large, layer-specific scales
        self.time_mlp = nn.Sequential(nn.Linear(self.TIME_FEATURES, dim), nn.SiLU(), nn.Linear(dim, dim))
        # No state token when the dataset has no proprioception.
        self.state_encoder = (
            nn.Sequential(nn.Linear(state_dim, cfg.state_hidden_size), nn.SiLU(), nn.Linear(cfg.state_hidden_size, dim))
            if state_dim > 0 else None
        )
        self.action_encoder = nn.Linear(action_dim, dim)
        n_tokens = cfg.action_horizon + (1 if state_dim > 0 else 0)
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens, dim) * 0.02)
        modes = [("cross" if i % 2 == 0 else "self") if cfg.interleave_self_attention else "both" for i in range(cfg.num_layers)]
        self.blocks = nn.ModuleList(
            _DiTBlock(dim, cfg.num_heads, vlm_dim, cfg.mlp_ratio, cfg.dropout, m) for m in modes
        )
        self.norm_out = nn.LayerNorm(dim, elementwise_affine=False)
        self.ada_out = nn.Linear(dim, 2 * dim)
        self.action_decoder = nn.Linear(dim, action_dim)

    @property
    def dtype(self) -> torch.dtype:
        return self.action_encoder.weight.dtype

    # ---- the velocity field ------------------------------------------------------------------------

    def velocity(
        self,
        x: torch.Tensor,  # [N, H, A] noised chunk, N = B * repeats
        t: torch.Tensor,  # [N] in [0, 1]
        state: torch.Tensor,  # [N, state_dim]
        ctx: torch.Tensor,  # [B, L, vlm_dim] (already normalized by `context`)
        ctx_mask: torch.Tensor,  # [B, L] bool, True on real tokens
        repeats: int = 1,
    ) -> torch.Tensor:
        temb = self.time_mlp(timestep_features(t, self.TIME_FEATURES, self.cfg.timestep_scale).to(self.dtype))
        tokens = self.action_encoder(x.to(self.dtype))
        if self.state_encoder is not None:
            tokens = torch.cat([self.state_encoder(state.to(self.dtype)).unsqueeze(1), tokens], dim=1)
        h = tokens + self.pos_embed
        for block in self.blocks:
            h = block(h, temb, ctx, ctx_mask, repeats)
        scale, shift = self.ada_out(F.silu(temb)).unsqueeze(1).chunk(2, dim=-1)
        h = self.norm_out(h) * (1 + scale) + shift
        return self.action_decoder(h[:, -self.horizon:]).float()

    def context(self, hidden: torch.Tensor) -> torch.Tensor:
        # Hidden states may arrive in bf16 from the VLM; the head computes in its own dtype.
        return self.vlm_norm(hidden.to(self.dtype))

    def sample_time(self, n: int, device: torch.device) -> torch.Tensor:
        beta = torch.distributions.Beta(
            torch.tensor(self.cfg.noise_beta_alpha, device=device), torch.tensor(self.cfg.noise_beta_beta, device=device)
        )
        return self.cfg.noise_s * (1.0 - beta.sample((n,)))

    # ---- training, inference, distillation ------------------------------------------------------

    def loss(
        self, hidden: torch.Tensor, mask: torch.Tensor, state: torch.Tensor, action: torch.Tensor, action_mask: torch.Tensor
    ) -> torch.Tensor:
        """Per-sample flow-matching loss [B]: MSE of the velocity over valid steps, averaged over the R repeats."""
        r, b = self.cfg.repeated_diffusion_steps, action.shape[0]
        ctx = self.context(hidden)
        # Padded steps carry no information: zeroing them keeps their values out of the attention.
        action = action.float() * action_mask.unsqueeze(-1)
        action_r = action.repeat_interleave(r, 0)
        noise = torch.randn_like(action_r)
        t = self.sample_time(b * r, action.device)
        x_t = (1.0 - t)[:, None, None] * noise + t[:, None, None] * action_r
        v = self.velocity(x_t, t, state.repeat_interleave(r, 0), ctx, mask, repeats=r)
        per = masked_chunk_loss(v, action_r - noise, action_mask.repeat_interleave(r, 0), "mse")
        return per.view(b, r).mean(dim=1)

    def sample(self, hidden: torch.Tensor, mask: torch.Tensor, state: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Action chunks [B, H, A]: Euler integration from seeded Gaussian noise (t = 0) to t = 1."""
        ctx = self.context(hidden)
        x = seeded_normal(seeds, (self.horizon, self.action_dim), hidden.device, torch.float32)
        steps = self.cfg.num_inference_timesteps
        for k in range(steps):
            t = torch.full((x.shape[0],), k / steps, device=x.device)
            x = x + self.velocity(x, t, state, ctx, mask) / steps
        return x

    def distill_output(self, hidden: torch.Tensor, mask: torch.Tensor, state: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        """Velocity at the sample's seeded noise and t = 0, [B, H, A]: a deterministic, differentiable output.

        It is exactly the first Euler step of `sample`, so matching it keeps the
        inference path's starting direction (DER++ / LwF targets).
        """
        ctx = self.context(hidden)
        x = seeded_normal(seeds, (self.horizon, self.action_dim), hidden.device, torch.float32)
        t = torch.zeros(x.shape[0], device=x.device)
        return self.velocity(x, t, state, ctx, mask)
