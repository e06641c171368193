"""A small flow-matching action head: features -> an action chunk by integrating a learned velocity field.

The regression head (`MLPChunkHead`) predicts the mean of the demonstrated chunks; where the demos
disagree (go left or right of an obstacle, grasp now or a step later) the mean can be an action no
demo took. This head learns the whole distribution of chunks instead (rectified flow):

    x_t = (1 - t) * noise + t * chunk,   t ~ U[0, 0.999)     target velocity v = chunk - noise
    velocity net = MLPChunkHead([features, x_t flattened, sinusoidal features of t])

Training draws `repeats` (noise, t) pairs per sample on the same features (the encoder runs once).
Inference starts every sample from the same fixed noise draw (`noise_seed`) and takes `steps` Euler
steps of size 1/steps, so the policy is deterministic and consecutive queries start from the same
point (a fresh draw per query lets the policy hop between modes from one chunk to the next). In eval
mode the loss draws its noise and times from `noise_seed` too, so a validation loss is repeatable.
The distillation output (DER++, LwF) is the velocity at the fixed noise and t = 0: a deterministic,
differentiable function of the sample, and the direction of the first Euler step.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from AlphaBrain.model.core.losses import masked_chunk_loss
from AlphaBrain.model.modules.action_heads import MLPChunkHead
from AlphaBrain.model.modules.flow_matching_head import timestep_features

TIME_FEATURES = 32
TIME_SCALE = 1000.0  # t in [0, 1] spans the sinusoids' frequencies as a DDPM step index would
T_MAX = 0.999  # at t = 1 the input would be the answer itself


class FlowChunkHead(nn.Module):
    """[B, in_dim] features -> [B, horizon, action_dim] chunks by flow matching (see the module docstring)."""

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        num_layers: int,
        horizon: int,
        action_dim: int,
        dropout: float = 0.0,
        *,
        steps: int = 10,
        repeats: int = 4,
        noise_seed: int = 0,
    ) -> None:
        super().__init__()
        self.horizon, self.action_dim = horizon, action_dim
        self.steps, self.repeats, self.noise_seed = steps, repeats, noise_seed
        net_in = in_dim + horizon * action_dim + TIME_FEATURES
        self.velocity_net = MLPChunkHead(net_in, hidden_dim, num_layers, horizon, action_dim, dropout)

    def velocity(self, features: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Velocity [N, H, A] at the noised chunks x [N, H, A] and times t [N], for features [N, in_dim]."""
        temb = timestep_features(t, TIME_FEATURES, TIME_SCALE).to(features.dtype)
        return self.velocity_net(torch.cat([features, x.flatten(1).to(features.dtype), temb], dim=-1)).float()

    def _fixed_noise(self, n: int, device: torch.device) -> torch.Tensor:
        # Drawn on CPU from its own generator: the same on every device and untouched by the global RNG.
        g = torch.Generator().manual_seed(self.noise_seed)
        return torch.randn((self.horizon, self.action_dim), generator=g).to(device).expand(n, -1, -1)

    def loss(self, features: torch.Tensor, action: torch.Tensor, action_mask: torch.Tensor) -> torch.Tensor:
        """Per-sample loss [B]: MSE of the velocity over the valid steps, averaged over the repeats."""
        r, b = self.repeats, action.shape[0]
        # Padded steps carry no information: zeroing them keeps their values out of the input.
        action = (action.float() * action_mask.unsqueeze(-1)).repeat_interleave(r, 0)
        shape = (b * r, self.horizon, self.action_dim)
        if self.training:
            noise = torch.randn(shape, device=action.device)
            t = torch.rand(b * r, device=action.device) * T_MAX
        else:  # repeatable evaluation loss
            g = torch.Generator().manual_seed(self.noise_seed)
            noise = torch.randn(shape, generator=g).to(action.device)
            t = (torch.rand(b * r, generator=g) * T_MAX).to(action.device)
        x_t = (1.0 - t)[:, None, None] * noise + t[:, None, None] * action
        v = self.velocity(features.repeat_interleave(r, 0), x_t, t)
        per = masked_chunk_loss(v, action - noise, action_mask.repeat_interleave(r, 0), "mse")
        return per.view(b, r).mean(dim=1)

    def sample(self, features: torch.Tensor) -> torch.Tensor:
        """Chunks [B, H, A]: Euler integration from the fixed noise (t = 0) to t = 1."""
        x = self._fixed_noise(features.shape[0], features.device).float()
        for k in range(self.steps):
            t = torch.full((x.shape[0],), k / self.steps, device=x.device)
            x = x + self.velocity(features, x, t) / self.steps
        return x

    def distill_output(self, features: torch.Tensor) -> torch.Tensor:
        """Velocity at the fixed noise and t = 0, [B, H, A]: the first Euler step's direction."""
        x = self._fixed_noise(features.shape[0], features.device).float()
        return self.velocity(features, x, torch.zeros(x.shape[0], device=x.device))
