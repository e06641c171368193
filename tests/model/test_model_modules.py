"""Building blocks: the hashed tokenizer, random shift, the masked loss, collation."""

from __future__ import annotations

import numpy as np
import torch

from AlphaBrain.model.core import collate_examples, masked_chunk_loss
from AlphaBrain.model.modules.augment import random_shift
from AlphaBrain.model.modules.language import hashed_tokens, words


def test_tokenizer_is_stable_and_case_insensitive():
    assert words("Open the drawer!") == ["open", "the", "drawer"]
    assert hashed_tokens("Open the drawer!", 4096) == hashed_tokens("open  the-drawer", 4096)
    # CRC-32 values are fixed forever: a checkpoint's embedding rows keep their meaning.
    assert hashed_tokens("open", 4096, 1) == (0xA47083A4 % 4096,) == (932,)
    assert hashed_tokens("open the drawer", 4096) != hashed_tokens("close the drawer", 4096)
    # Bigrams keep word order apart.
    a = hashed_tokens("put the bowl on the plate", 4096)
    b = hashed_tokens("put the plate on the bowl", 4096)
    assert sorted(a[:6]) == sorted(b[:6]) and a[6:] != b[6:]
    assert hashed_tokens("", 4096) == ()


def test_random_shift_is_a_reproducible_integer_translation():
    images = torch.rand(5, 3, 16, 16)
    torch.manual_seed(0)
    a = random_shift(images, 2)
    torch.manual_seed(0)
    b = random_shift(images, 2)
    assert torch.equal(a, b) and a.shape == images.shape
    assert torch.equal(random_shift(images, 0), images)
    # The centre of every shifted image is a translated copy of the original.
    for k in range(5):
        found = any(
            torch.equal(a[k, :, 4:12, 4:12], images[k, :, 4 + dy : 12 + dy, 4 + dx : 12 + dx])
            for dy in range(-2, 3)
            for dx in range(-2, 3)
        )
        assert found


def test_masked_loss_averages_over_valid_entries():
    pred = torch.zeros(2, 3, 2)
    target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]], [[1.0, 3.0], [0.0, 0.0], [0.0, 0.0]]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    per_sample = masked_chunk_loss(pred, target, mask, "l1")
    torch.testing.assert_close(per_sample, torch.tensor([1.5, 4.0 / 6.0]))
    empty = masked_chunk_loss(pred, target, torch.zeros(2, 3, dtype=torch.bool))
    assert torch.equal(empty, torch.zeros(2))


def test_collate_resizes_and_scales_images():
    examples = [
        {"image": [np.full((32, 48, 3), 255, np.uint8)], "lang": "x", "state": np.zeros(2, np.float32),
         "action": np.zeros((4, 3), np.float32)}
    ]
    batch = collate_examples(
        examples, num_cameras=1, state_dim=2, image_size=(16, 16), action_horizon=4, action_dim=3,
        require_action=True,
    )
    assert batch.images.shape == (1, 1, 3, 16, 16)
    torch.testing.assert_close(batch.images, torch.ones_like(batch.images))
    assert batch.action_mask.dtype == torch.bool and batch.action_mask.all()
