"""model/task_conditioning.py: per-task masks and parameter sets, their checkpoint form and `select`."""

import pytest
import torch

from AlphaBrain.model.task_conditioning import (
    AS_TRAINED,
    CONDITIONING_KEY,
    ParameterSets,
    WeightMasks,
    conditioning_from_checkpoint,
    conditioning_state,
)
from AlphaBrain.utils.errors import UserError


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))


def roundtrip(cond):
    meta, tensors = conditioning_state(cond)
    assert all(k.startswith("conditioning.") for k in tensors)
    return conditioning_from_checkpoint({"name": "x", **meta}, {**tensors, "other.tensor": torch.zeros(1)})


def test_weight_masks_select_each_tasks_weights_and_back():
    model = small_model()
    full = model[0].weight.detach().clone()
    owners = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1], [1, 0, 0, 2]], dtype=torch.uint8)
    masks = roundtrip(WeightMasks({"0.weight": owners}, [0, 1]))
    assert isinstance(masks, WeightMasks) and masks.positions == [0, 1]
    assert masks.select(model, 0) == 0
    assert torch.equal(model[0].weight, torch.where(owners == 1, full, torch.zeros_like(full)))
    assert masks.select(model, 1) == 1
    assert torch.equal(model[0].weight, torch.where(owners >= 1, full, torch.zeros_like(full)))
    assert masks.select(model, 5) == AS_TRAINED  # a task not trained yet: the weights as trained
    assert torch.equal(model[0].weight, full)
    assert torch.equal(model[1].weight, small_model()[1].weight)  # unmasked parameters untouched


def test_parameter_sets_swap_values_in_and_keep_the_trained_ones_for_other_tasks():
    model = small_model()
    trained = model[1].weight.detach().clone()
    sets = {k: {"1.weight": torch.full((2, 3), float(k)), "1.bias": torch.full((2,), -float(k))} for k in (0, 1, 2)}
    cond = roundtrip(ParameterSets(sets))
    assert isinstance(cond, ParameterSets) and cond.positions == [0, 1, 2]
    for k in (2, 0, 1):
        assert cond.select(model, k) == k
        assert torch.equal(model[1].weight, sets[k]["1.weight"]) and torch.equal(model[1].bias, sets[k]["1.bias"])
    cond.select(model, 7)
    assert torch.equal(model[1].weight, trained)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="uint8"):
        WeightMasks({"0.weight": torch.zeros(3, 4, dtype=torch.int64)}, [0])
    with pytest.raises(ValueError, match="same parameters"):
        ParameterSets({0: {"a": torch.zeros(1)}, 1: {"b": torch.zeros(1)}})
    with pytest.raises(UserError, match='Unknown task conditioning kind.*"nonsense".*parameter_sets, weight_masks'):
        conditioning_from_checkpoint({CONDITIONING_KEY: {"kind": "nonsense"}}, {})
    assert conditioning_from_checkpoint({"name": "er"}, {}) is None
    masks = WeightMasks({"missing.weight": torch.zeros(2, dtype=torch.uint8)}, [0])
    with pytest.raises(UserError, match="parameter\\(s\\) the model does not have"):
        masks.select(small_model(), 0)
