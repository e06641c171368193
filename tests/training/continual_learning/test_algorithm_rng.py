"""The algorithms' one RNG helper: seeds derived from integers, a seeded torch block that gives the caller's state back."""

import json

import numpy as np
import pytest
import torch

from AlphaBrain.training.continual_learning.algorithms.rng import (
    derive_seed,
    numpy_rng,
    numpy_rng_from_state,
    seeded_torch_rng,
)


def test_derived_seeds_are_63_bit_and_depend_on_every_integer_and_its_place():
    seeds = {derive_seed(*e) for e in [(0, 1, 2), (0, 2, 1), (1, 1, 2), (0, 1, 2, 3), (0, 1)]}
    assert len(seeds) == 5 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(0, 1, 2, 0) == derive_seed(0, 1, 2)  # trailing zeros do not count (numpy's SeedSequence)
    assert derive_seed(3, 4, 5) == derive_seed(np.int64(3), 4.0, 5)  # the same integers, whatever their type


def test_seeded_block_draws_the_same_and_gives_the_callers_stream_back():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with seeded_torch_rng(derive_seed(7, 1)):
        a = torch.rand(4)
    with seeded_torch_rng(derive_seed(7, 1), torch.device("cpu")):
        b = torch.rand(4)
    assert torch.equal(a, b)
    assert torch.equal(torch.rand(3), expected_next)  # as if the blocks had not run


def test_seeded_block_restores_the_stream_after_an_exception():
    torch.manual_seed(5)
    expected_next = torch.rand(2)
    torch.manual_seed(5)
    with pytest.raises(RuntimeError), seeded_torch_rng(1):
        torch.rand(10)
        raise RuntimeError()
    assert torch.equal(torch.rand(2), expected_next)


def test_numpy_stream_comes_back_from_its_json_state():
    rng = numpy_rng(2, 0, 1)
    rng.integers(0, 100, 5)
    restored = numpy_rng_from_state(json.loads(json.dumps(rng.bit_generator.state)))
    assert restored.integers(0, 10**9, 8).tolist() == rng.integers(0, 10**9, 8).tolist()
    assert numpy_rng(2, 0, 1).integers(0, 10**9, 4).tolist() == np.random.default_rng([2, 0, 1]).integers(0, 10**9, 4).tolist()
