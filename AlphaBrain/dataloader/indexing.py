"""Frame references and index checks shared by the single-dataset and mixture classes."""

from __future__ import annotations

Ref = tuple[int, int, int]  # (dataset_index, episode_index, frame_index)


def check_index(i: int, n: int, what: str) -> int:
    """`i` as an index into `n` frames (a negative one counts from the end); IndexError when out of range."""
    i = int(i)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {i} out of range for a {what} of {n} frames")
    return i
