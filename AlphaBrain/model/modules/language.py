"""A deterministic, offline instruction encoder: hashed word n-grams -> EmbeddingBag -> MLP.

No vocabulary file and no download: each lowercased word (and each pair of
adjacent words when `ngrams >= 2`) is hashed with CRC-32 into one of `buckets`
embedding rows. CRC-32 is stable across processes and platforms (unlike
Python's salted `hash`), so a checkpoint means the same thing everywhere.
Bigrams keep some word order ("put the bowl on the plate" vs "put the plate on
the bowl"); unigrams already separate "open the drawer" from "close the drawer".
"""

from __future__ import annotations

import functools
import re
import zlib

import torch
import torch.nn as nn

_SPLIT = re.compile(r"[^a-z0-9]+")


def words(text: str) -> list[str]:
    """Lowercase and split on anything that is not a letter or a digit."""
    return [w for w in _SPLIT.split(text.lower()) if w]


@functools.lru_cache(maxsize=4096)
def hashed_tokens(text: str, buckets: int, ngrams: int = 2) -> tuple[int, ...]:
    """Bucket ids of the instruction's word n-grams (n = 1..ngrams), in order."""
    ws = words(text)
    grams: list[str] = list(ws)
    for n in range(2, ngrams + 1):
        grams += [" ".join(ws[i : i + n]) for i in range(len(ws) - n + 1)]
    return tuple(zlib.crc32(g.encode("utf-8")) % buckets for g in grams)


class HashedTextEncoder(nn.Module):
    """Instruction strings -> [B, out_dim] features."""

    def __init__(self, buckets: int, embed_dim: int, out_dim: int, ngrams: int = 2) -> None:
        super().__init__()
        self.buckets = buckets
        self.ngrams = ngrams
        self.embedding = nn.EmbeddingBag(buckets, embed_dim, mode="mean")
        self.mlp = nn.Sequential(nn.Linear(embed_dim, out_dim), nn.ReLU(), nn.Linear(out_dim, out_dim))
        self.out_dim = out_dim

    def token_ids(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        ids: list[int] = []
        offsets: list[int] = []
        for text in texts:
            offsets.append(len(ids))
            ids.extend(hashed_tokens(text, self.buckets, self.ngrams))
        return (
            torch.tensor(ids, dtype=torch.long, device=device),
            torch.tensor(offsets, dtype=torch.long, device=device),
        )

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = self.embedding.weight.device
        ids, offsets = self.token_ids(texts, device)
        # An empty instruction is an empty bag: EmbeddingBag gives it a zero vector.
        return self.mlp(self.embedding(ids, offsets))
