"""Data fingerprints: which data a dataset_statistics.json was computed on, and which data a run trained on.

Statistics from another mixture with the same dimensions pass every shape check and make the policy
output garbage (success ~0%), so every statistics entry records the data it was computed on, and a
run records the data it trained on (policy_spec.json, `data_fingerprints`); the two are compared
before a run is trained, evaluated or served.

Definition (format 1), one fingerprint per embodiment entry, over the datasets pooled into it:

    per dataset: {"frames": N, "episodes": [[episode_index, length], ...],
                  "state_sha256": sha256 of the raw state as little-endian float32 [N, S], row-major,
                  "action_sha256": the same for the raw action}
    fingerprint = "sha256:" + sha256(canonical JSON of {"format": 1, "embodiment": E,
                                                        "datasets": the per-dataset objects, sorted})

Canonical JSON: keys sorted, separators (",", ":"). The datasets are sorted (by their canonical JSON)
because the pooled statistics do not depend on the mixture's order. Paths and directory names are
left out, so a moved or renamed copy of the same data matches; the state/action content is in, so
two datasets with the same episode layout but other values do not. Images are not part of it
(the statistics do not read them).
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any, Mapping, Optional

import numpy as np

from AlphaBrain.utils.errors import DatasetError

FINGERPRINT_KEY = "data_fingerprint"  # in every embodiment entry of dataset_statistics.json
FORMAT = 1
_warned: set[str] = set()


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _array_sha256(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype="<f4").tobytes()).hexdigest()


def _dataset_record(ds: Any) -> dict:
    cached = getattr(ds, "_fingerprint_record", None)
    if cached is None:
        state, action = ds.raw_arrays()
        cached = {
            "frames": int(len(state)),
            "episodes": [[int(ep.episode_index), int(ep.length)] for ep in ds.episodes],
            "state_sha256": _array_sha256(state),
            "action_sha256": _array_sha256(action),
        }
        ds._fingerprint_record = cached  # the arrays are read-only: hashed once per dataset object
    return cached


def fingerprint_of(embodiment: str, datasets: list) -> str:
    """The fingerprint of the datasets pooled into one embodiment's statistics (module docstring)."""
    records = sorted((_dataset_record(ds) for ds in datasets), key=_canonical)
    payload = {"format": FORMAT, "embodiment": embodiment, "datasets": records}
    return "sha256:" + hashlib.sha256(_canonical(payload).encode()).hexdigest()


def data_fingerprints(datasets: list) -> dict[str, str]:
    """{embodiment: fingerprint} of datasets (grouped by embodiment, as the statistics pool them)."""
    groups: dict[str, list] = {}
    for ds in datasets:
        groups.setdefault(ds.embodiment, []).append(ds)
    return {emb: fingerprint_of(emb, members) for emb, members in groups.items()}


def short(fingerprint: Optional[str]) -> str:
    """The first 12 hex digits: enough to tell two fingerprints apart in a message."""
    return "none" if not fingerprint else str(fingerprint).removeprefix("sha256:")[:12]


def warn_once(key: str, message: str) -> None:
    """A note on stderr, once per process for each `key` (e.g. a file that predates fingerprints)."""
    if key not in _warned:
        _warned.add(key)
        print(f"note: {message}", file=sys.stderr, flush=True)


def check_fingerprints(
    stats: Mapping[str, Any], expected: Mapping[str, str], *, stats_file: Any, data: str, fix: str, allow_hint: str,
    allow: bool = False,
) -> None:
    """DatasetError unless every `expected` {embodiment: fingerprint} matches the statistics' entry.

    `data` says where `expected` comes from (the training data, a run's record), `fix` how to
    recompute the file and `allow_hint` how to use it anyway. An entry without a fingerprint (a
    file written before they existed) is let through with a one-time note; `allow` lets a
    mismatch through with a note.
    """
    for emb, want in expected.items():
        entry = stats.get(emb)
        have = entry.get(FINGERPRINT_KEY) if isinstance(entry, Mapping) else None
        if have is None:
            warn_once(f"{stats_file}:{emb}", f"{stats_file} records no data fingerprint for {emb!r} (written before "
                                             f"fingerprints existed), so it cannot be checked against {data}; {fix}")
            continue
        if have == want:
            continue
        what = (f"{stats_file} was computed on other data than {data} (embodiment {emb!r}: statistics "
                f"fingerprint {short(have)}, training data {short(want)})")
        if allow:
            warn_once(f"{stats_file}:{emb}:foreign", f"{what}; used anyway, as asked")
            continue
        raise DatasetError(f"{what}; {fix}, or {allow_hint} to use it anyway")
