"""The spiking action head: LIF dynamics by hand, the surrogate gradient, snntorch agreement, statelessness."""

from __future__ import annotations

import pytest
import torch

from AlphaBrain.model.modules.spiking_head import SpikingActionHead, lif_step, spike


def make_head(**overrides) -> SpikingActionHead:
    kwargs = dict(
        hidden_sizes=[32, 24], num_steps=5, beta=0.9, threshold=1.0, surrogate_slope=25.0,
        readout_beta=0.8, state_hidden=8, pool="mean", dropout=0.0,
    )
    kwargs.update(overrides)
    torch.manual_seed(0)
    return SpikingActionHead(16, 6, 5, 4, 3, **kwargs)


def test_lif_matches_a_hand_computation():
    # beta 0.5, threshold 1, constant current 0.6, then no input:
    #   t1  mem = 0.6                          -> no spike
    #   t2  mem = 0.5*0.6  + 0.6 = 0.9         -> no spike
    #   t3  mem = 0.5*0.9  + 0.6 = 1.05        -> spike
    #   t4  mem = 0.5*1.05 + 0   - 1*1 = -0.475 -> no spike (reset by subtraction of the previous spike)
    #   t5  mem = 0.5*-0.475              = -0.2375
    currents = [0.6, 0.6, 0.6, 0.0, 0.0]
    expected_mem = [0.6, 0.9, 1.05, -0.475, -0.2375]
    expected_spk = [0.0, 0.0, 1.0, 0.0, 0.0]
    mem = torch.zeros(1, dtype=torch.float64)
    spk = torch.zeros(1, dtype=torch.float64)
    for c, m_exp, s_exp in zip(currents, expected_mem, expected_spk):
        spk, mem = lif_step(torch.tensor([c], dtype=torch.float64), mem, spk, beta=0.5, threshold=1.0, slope=25.0)
        assert mem.item() == pytest.approx(m_exp, abs=1e-12)
        assert spk.item() == s_exp


def test_surrogate_gradient_is_nonzero_where_the_step_function_has_none():
    x = torch.tensor([-2.0, -0.3, -0.01, 0.01, 0.3, 2.0], requires_grad=True)
    out = spike(x, 25.0)
    assert out.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]  # forward: exactly the Heaviside step
    (grad,) = torch.autograd.grad(out.sum(), x)
    # The step's true derivative is 0 at every one of these points; the surrogate is not.
    assert bool((grad > 0).all())
    torch.testing.assert_close(grad, 1.0 / (1.0 + 25.0 * x.detach().abs()) ** 2)
    assert grad[2] > grad[1] > grad[0]  # peaks at the threshold


def test_lif_agrees_with_snntorch_leaky():
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    torch.manual_seed(1)
    currents = torch.randn(12, 3, 5) * 0.8
    ours_in = currents.clone().requires_grad_(True)
    theirs_in = currents.clone().requires_grad_(True)
    leaky = snn.Leaky(beta=0.85, threshold=0.7, spike_grad=surrogate.fast_sigmoid(slope=25), reset_mechanism="subtract")
    mem_ref = leaky.reset_mem()
    mem = torch.zeros(3, 5)
    spk = torch.zeros(3, 5)
    total_ours, total_ref = 0.0, 0.0
    for t in range(currents.shape[0]):
        spk, mem = lif_step(ours_in[t], mem, spk, beta=0.85, threshold=0.7, slope=25.0)
        spk_ref, mem_ref = leaky(theirs_in[t], mem_ref)
        torch.testing.assert_close(mem, mem_ref)
        assert torch.equal(spk, spk_ref)
        total_ours = total_ours + (spk * torch.arange(5.0)).sum() + mem.sum()
        total_ref = total_ref + (spk_ref * torch.arange(5.0)).sum() + mem_ref.sum()
    total_ours.backward()
    total_ref.backward()
    torch.testing.assert_close(ours_in.grad, theirs_in.grad)


def test_head_shapes_pools_and_no_state():
    tokens, state = torch.randn(2, 6, 16), torch.randn(2, 5)
    for pool in ("mean", "flatten"):
        assert make_head(pool=pool)(tokens, state).shape == (2, 4, 3)
    torch.manual_seed(0)
    no_state = SpikingActionHead(16, 6, 0, 4, 3, hidden_sizes=[8], num_steps=2, beta=0.9, threshold=1.0,
                                 surrogate_slope=25.0, readout_beta=0.8, state_hidden=8)
    assert no_state(tokens, torch.zeros(2, 0)).shape == (2, 4, 3)


def test_head_is_stateless_and_deterministic():
    head = make_head(dropout=0.3).eval()
    assert list(head.buffers()) == []  # no membrane kept in the module
    tokens, state = torch.randn(3, 6, 16), torch.randn(3, 5)
    first = head(tokens, state)
    head(torch.randn(7, 6, 16) * 5, torch.randn(7, 5))  # an unrelated call in between
    assert torch.equal(head(tokens, state), first)
    # A sample's output does not depend on the rest of the batch.
    assert torch.equal(head(tokens[1:2], state[1:2]), first[1:2])


def test_head_gradients_reach_every_parameter_through_the_spikes():
    head = make_head()
    out, rates = head(torch.randn(4, 6, 16), torch.randn(4, 5), return_spikes=True)
    assert all(0.0 < float(r.mean()) < 1.0 for r in rates)  # the layers do spike, and not always
    out.square().mean().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_head_accepts_bf16_tokens_and_returns_its_own_dtype():
    out = make_head()(torch.randn(2, 6, 16, dtype=torch.bfloat16), torch.randn(2, 5))
    assert out.dtype == torch.float32 and bool(out.isfinite().all())


def test_readout_is_a_weighted_mean_of_the_per_step_readouts():
    # Constant spikes in every step -> the normalized leaky readout equals one step's readout + bias,
    # whatever num_steps and readout_beta are (the output scale does not depend on them).
    for steps, rbeta in ((1, 0.8), (6, 0.8), (6, 1.0), (3, 0.0)):
        head = make_head(num_steps=steps, readout_beta=rbeta, hidden_sizes=[4])
        with torch.no_grad():
            head.layers[0].weight.zero_()
            head.layers[0].bias.fill_(10.0)  # every neuron fires every step
            head.readout_bias.fill_(0.5)
        out = head(torch.randn(2, 6, 16), torch.randn(2, 5)).flatten(1)
        expected = head.readout.weight.sum(dim=1) + 0.5
        torch.testing.assert_close(out, expected.expand_as(out))


def test_head_runs_in_fp32_under_bf16_autocast():
    head = make_head().eval()
    tokens, state = torch.randn(2, 6, 16), torch.randn(2, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(tokens.bfloat16(), state)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, head(tokens.bfloat16().float(), state))
