"""Prompt assembly shared by the decoder VLM backbones (Llama-3.2-Vision, PaliGemma).

A backbone (`PromptBackbone`) turns each sample into a list of token ids (its
own layout: image placeholders, chat headers, the instruction). This module

* tokenizes offline: `ByteTokenizer` for the tiny random builds (ids fixed by
  the code, the same in every process, so a checkpoint never depends on a
  file), `HFTokenizer` around a pretrained model directory's tokenizer;
* right-pads the prompts of a batch and appends optional learned *query*
  embeddings after the padding, so the queries sit at the same last positions
  of every row. Position ids count only real tokens, so a query sees the same
  positions with or without padding (a padded batch gives the same result as
  one sample at a time).

Layout of a row:  [prompt_i tokens][pad ... pad][query_1 ... query_Q]
                   mask 1           mask 0       mask 1
Pad rows still attend causally to the real tokens before them, so no attention
row is empty (an all-masked row gives NaN in SDPA).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from AlphaBrain.model.backbones.base import VLMBackbone, VLMConfig, enable_activation_checkpointing, pretrained_dir
from AlphaBrain.utils.errors import UserError


class ByteTokenizer:
    """A deterministic byte-level tokenizer for the tiny builds.

    `specials` take ids 0..n-1, byte b takes id n + b, and `after_vocab` tokens
    take ids from `after_vocab_start` (default `vocab_size`) on: Llama-3.2-Vision
    keeps its image token just past the text vocabulary, in extra embedding rows.
    Random full-size builds use it too (with the real model's ids where they matter).
    """

    def __init__(self, specials: Sequence[str], after_vocab: Sequence[str] = (), after_vocab_start: int | None = None) -> None:
        self.specials = tuple(specials)
        self.vocab_size = len(self.specials) + 256
        start = self.vocab_size if after_vocab_start is None else after_vocab_start
        self._special_ids = {name: i for i, name in enumerate(self.specials)}
        self._special_ids.update({name: start + j for j, name in enumerate(after_vocab)})

    def encode(self, text: str) -> list[int]:
        offset = len(self.specials)
        return [offset + b for b in text.encode("utf-8")]

    def special(self, name: str) -> int:
        return self._special_ids[name]


class HFTokenizer:
    """The tokenizer of a pretrained model directory, behind the same two methods."""

    def __init__(self, path: Path, yaml_key: str) -> None:
        from transformers import AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"{path} has no usable tokenizer files ({yaml_key}): {str(exc).splitlines()[0][:200]}") from None
        self.path = path

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def special(self, name: str) -> int:
        token_id = self.tokenizer.convert_tokens_to_ids(name)
        if token_id is None or token_id == self.tokenizer.unk_token_id:
            raise UserError(f"The tokenizer in {self.path} has no token {name!r}; is this the right model directory?")
        return int(token_id)


def pack_prompts(
    prompts: Sequence[Sequence[int]],
    embed: nn.Module,
    query_embeds: torch.Tensor | None,
    *,
    pad_id: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Embed right-padded prompts and append the queries.

    Returns (ids [B, P] of the prompt part, inputs_embeds [B, P+Q, D], attention mask [B, P+Q] long,
    position ids [B, P+Q] counting real tokens from 0).
    """
    batch = len(prompts)
    longest = max(len(p) for p in prompts)
    ids = torch.full((batch, longest), pad_id, dtype=torch.long)
    mask = torch.zeros(batch, longest, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(p, dtype=torch.long)
        mask[i, : len(p)] = 1
    ids, mask = ids.to(device), mask.to(device)
    embeds = embed(ids)
    if query_embeds is not None:
        if query_embeds.shape[0] != batch or query_embeds.shape[-1] != embeds.shape[-1]:
            raise ValueError(f"query_embeds {tuple(query_embeds.shape)} do not fit prompts of width {embeds.shape[-1]}")
        embeds = torch.cat([embeds, query_embeds.to(embeds.dtype)], dim=1)
        mask = torch.cat([mask, mask.new_ones(batch, query_embeds.shape[1])], dim=1)
    positions = (mask.cumsum(dim=1) - 1).clamp_min(0)
    return ids, embeds, mask, positions


def freeze_unused_lm_head(hf_model: nn.Module) -> None:
    """The LM head is never called (heads read last hidden states): freeze it unless it *is* the input embedding.

    A parameter that gets no gradient breaks DDP (it waits for a gradient that
    never comes). A tied head (PaliGemma) shares its weight with the token
    embedding, which is used, so it stays trainable.
    """
    head = hf_model.get_output_embeddings()
    if head is None:
        return
    if head.weight is not hf_model.get_input_embeddings().weight:
        head.weight.requires_grad_(False)


def build_hf_model(model_cls: type, cfg: VLMConfig, random_config: object) -> tuple[nn.Module, Path | None]:
    """The transformers model of a backbone block: pretrained from disk, or `random_config` with random weights.

    Returns (model, pretrained directory or None). Works under `torch.device("meta")` for random builds.
    """
    path = None
    if cfg.init == "pretrained":
        path = pretrained_dir(cfg.base_vlm, f"{cfg.yaml_path}.base_vlm")
        model = model_cls.from_pretrained(
            str(path), local_files_only=True, attn_implementation=cfg.attn_implementation, dtype=cfg.torch_dtype
        )
    else:
        model = model_cls._from_config(random_config, attn_implementation=cfg.attn_implementation, dtype=cfg.torch_dtype)
    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(model)
    freeze_unused_lm_head(model)
    return model, path


def read_image_stats(
    path: Path | None, default_mean: Sequence[float], default_std: Sequence[float]
) -> tuple[list[float], list[float]]:
    """Normalization constants: the pretrained directory's preprocessor_config.json, else the published ones."""
    if path is not None and (path / "preprocessor_config.json").is_file():
        conf = json.loads((path / "preprocessor_config.json").read_text())
        return list(conf.get("image_mean", default_mean)), list(conf.get("image_std", default_std))
    return list(default_mean), list(default_std)


class PromptBackbone(VLMBackbone):
    """A decoder VLM fed one token-id prompt per sample, with optional action queries after the padding.

    Subclasses set `pad_id` and implement `prompt_ids` and `forward`, which takes
    `query_embeds` [B, Q, D]: learned queries appended after the (padded) prompt,
    whose hidden states are the last Q positions of the result.
    """

    pad_id: int

    @abc.abstractmethod
    def prompt_ids(self, instruction: str, num_cameras: int) -> list[int]:
        """The token ids of one sample's prompt (image placeholders included)."""

    def embed_prompts(
        self, images: torch.Tensor, lang: Sequence[str], query_embeds: torch.Tensor | None
    ) -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inner model, inputs_embeds [B, P+Q, D], attention mask [B, P+Q], position ids [B, P+Q]) of a batch."""
        inner = self.hf_model.model  # the LM head is never used
        prompts = [self.prompt_ids(text, images.shape[1]) for text in lang]
        _, embeds, mask, positions = pack_prompts(
            prompts, inner.get_input_embeddings(), query_embeds, pad_id=self.pad_id, device=images.device
        )
        return inner, embeds, mask, positions
