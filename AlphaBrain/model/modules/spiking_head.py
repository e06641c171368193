"""Spiking action head: leaky integrate-and-fire (LIF) layers simulated over `num_steps` steps.

    Q-Former tokens [B, Q, D] --(mean over Q | flatten)--.
    state [B, S] --(Linear + GELU)-----------------------+--> LayerNorm -> dropout -> current I (constant in time)
    for t in 1..T:    spikes_1 = LIF_1(W_1 I)    spikes_k = LIF_k(W_k spikes_{k-1})
                      readout  r_t = beta_out * r_{t-1} + W_out spikes_last           (leaky, never fires)
    action chunk = r_T * (1 - beta_out) / (1 - beta_out^T) + bias  ->  [B, horizon, action_dim]

LIF neuron (reset by subtraction, the reset uses the previous step's spike):

    mem_t = beta * mem_{t-1} + input_t - threshold * spk_{t-1}
    spk_t = H(mem_t - threshold)                         (H = Heaviside step)

H has zero gradient almost everywhere, so the backward pass replaces dH/dx by
the fast-sigmoid surrogate 1 / (1 + slope * |x|)^2 (Zenke & Ganguli 2018),
which is non-zero everywhere and peaks at the threshold. The reset term is
detached (as in snntorch): gradients flow through the membrane, not through
the decision to reset.

Why a hand-written LIF rather than snntorch.Leaky (installed, 1.0.0): a Leaky
module keeps the last membrane in a (non-persistent) buffer between calls,
appends itself to a process-global `SpikingNeuron.instances` list (so no head
is ever garbage-collected, e.g. LwF's teacher copies), and its per-call buffer
of batch shape is what DDP's buffer broadcast would sync. The dynamics here
are the same equations as Leaky(reset_mechanism="subtract") with the
fast_sigmoid surrogate (tests compare both), in a stateless function.

Stateless: every forward starts from zero membranes and keeps nothing
afterwards, so predictions depend only on the inputs (deterministic in eval,
no state carried between control steps or between samples of a batch).
The decoded output is the normalized readout membrane, a leaky-weighted spike
rate, so it is continuous even though the hidden layers only emit 0/1.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class _FastSigmoidSpike(torch.autograd.Function):
    """Forward: Heaviside(x) (x = mem - threshold); backward: fast-sigmoid surrogate derivative."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output / (1.0 + ctx.slope * x.abs()).square(), None


def spike(x: torch.Tensor, slope: float) -> torch.Tensor:
    """Heaviside step of `x` with the fast-sigmoid surrogate gradient of slope `slope`."""
    return _FastSigmoidSpike.apply(x, slope)


def lif_step(
    current: torch.Tensor, mem: torch.Tensor, spk: torch.Tensor, beta: float, threshold: float, slope: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LIF update; returns (spikes, membrane) after this step."""
    mem = beta * mem + current - threshold * spk.detach()
    return spike(mem - threshold, slope), mem


class SpikingActionHead(nn.Module):
    """(Q-Former tokens [B, Q, D], state [B, S]) -> action chunk [B, horizon, action_dim]."""

    def __init__(
        self,
        token_dim: int,
        num_tokens: int,
        state_dim: int,
        horizon: int,
        action_dim: int,
        *,
        hidden_sizes: list[int],
        num_steps: int,
        beta: float,
        threshold: float,
        surrogate_slope: float,
        readout_beta: float,
        state_hidden: int,
        pool: str = "mean",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if pool not in ("mean", "flatten"):
            raise ValueError(f"pool must be mean or flatten, got {pool!r}")
        self.horizon, self.action_dim = horizon, action_dim
        self.num_steps, self.beta, self.threshold = num_steps, beta, threshold
        self.slope, self.readout_beta, self.pool = surrogate_slope, readout_beta, pool
        # A dataset without proprioception (state_dim 0) contributes no features.
        self.state_encoder = (
            nn.Sequential(nn.Linear(state_dim, state_hidden), nn.GELU()) if state_dim > 0 else None
        )
        in_dim = (token_dim if pool == "mean" else token_dim * num_tokens) + (state_hidden if state_dim > 0 else 0)
        self.in_norm = nn.LayerNorm(in_dim)
        self.dropout = nn.Dropout(dropout)
        sizes = [in_dim, *hidden_sizes]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.readout = nn.Linear(sizes[-1], horizon * action_dim, bias=False)
        self.readout_bias = nn.Parameter(torch.zeros(horizon * action_dim))

    def features(self, tokens: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        tokens = tokens.to(self.in_norm.weight.dtype)
        x = tokens.mean(dim=1) if self.pool == "mean" else tokens.flatten(1)
        if self.state_encoder is not None:
            x = torch.cat([x, self.state_encoder(state.to(x.dtype))], dim=-1)
        return self.dropout(self.in_norm(x))

    def forward(self, tokens: torch.Tensor, state: torch.Tensor, return_spikes: bool = False):
        # Spike decisions compare membranes with the threshold: in bf16 (8-bit mantissa, steps of
        # ~0.008 near 1.0) they would flip with rounding. The head is small, so it always runs in
        # its own dtype, outside any autocast region.
        with torch.autocast(device_type=tokens.device.type, enabled=False):
            return self._simulate(tokens, state, return_spikes)

    def _simulate(self, tokens: torch.Tensor, state: torch.Tensor, return_spikes: bool):
        x = self.features(tokens, state)
        first_current = self.layers[0](x)  # the input is constant in time: compute its current once
        mems = [x.new_zeros(x.shape[0], layer.out_features) for layer in self.layers]
        spks = [m.clone() for m in mems]
        readout = x.new_zeros(x.shape[0], self.readout.out_features)
        rates = [m.clone() for m in mems]
        for _ in range(self.num_steps):
            inp = first_current
            for i, layer in enumerate(self.layers):
                current = inp if i == 0 else layer(inp)
                spks[i], mems[i] = lif_step(current, mems[i], spks[i], self.beta, self.threshold, self.slope)
                inp = spks[i]
                if return_spikes:
                    rates[i] = rates[i] + spks[i].detach()
            readout = self.readout_beta * readout + self.readout(inp)
        # Normalize the leaky sum to a weighted mean of the per-step readouts, so the output scale
        # does not depend on num_steps or readout_beta (the weights sum to 1).
        weights_sum = float(self.num_steps) if self.readout_beta == 1.0 else (
            (1.0 - self.readout_beta**self.num_steps) / (1.0 - self.readout_beta)
        )
        out = (readout / weights_sum + self.readout_bias).view(-1, self.horizon, self.action_dim)
        if return_spikes:
            return out, [r / self.num_steps for r in rates]
        return out
