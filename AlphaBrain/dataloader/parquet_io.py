"""Parquet and in-parquet image helpers shared by the LeRobot reader and writer.

Every read goes through `read_parquet` / `read_rows` so that a truncated or
corrupt file surfaces as a `DatasetError` naming the file, never as a bare
pyarrow traceback deep inside a DataLoader worker.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from AlphaBrain.utils.errors import DatasetError

# Hugging Face `datasets.Image()` is stored as this struct; LeRobot's "image"
# features use it, so datasets written here load in `datasets`/LeRobot too.
IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def _corrupt(path: Path, err: Exception) -> DatasetError:
    return DatasetError(
        f"cannot read parquet file {path}: {err}. The file is missing, truncated or corrupt; "
        "re-download or re-convert the dataset"
    )


def parquet_column_names(path: Path) -> list[str]:
    try:
        return list(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as e:
        raise _corrupt(path, e) from None


def read_parquet(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=list(columns) if columns is not None else None)
    except (OSError, pa.ArrowException) as e:
        raise _corrupt(path, e) from None


def read_rows(path: Path, columns: Sequence[str], start: int, stop: int) -> pa.Table:
    """Rows [start, stop) of some columns, reading only the row groups that hold them.

    v3.0 files hold hundreds of episodes; reading one episode's images must not
    decompress the whole file.
    """
    try:
        pf = pq.ParquetFile(path)
        groups, first_row, offset = [], None, 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if offset < stop and offset + n > start:
                groups.append(g)
                first_row = offset if first_row is None else first_row
            offset += n
        if not groups:
            raise DatasetError(f"{path} has {offset} rows; rows {start}..{stop} were expected in it")
        table = pf.read_row_groups(groups, columns=list(columns))
    except (OSError, pa.ArrowException) as e:
        raise _corrupt(path, e) from None
    return table.slice(start - first_row, stop - start)


def column_to_numpy(column: pa.ChunkedArray, name: str, path: Path) -> np.ndarray:
    """A scalar column as [N], a (fixed-size) list column as [N, D], without per-row Python."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if col.null_count:
        raise DatasetError(f"{path}: column {name!r} has {col.null_count} missing values")
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type):
        n = len(col)
        flat = col.flatten().to_numpy(zero_copy_only=False)
        if n == 0:
            return flat.reshape(0, 0)
        if flat.size % n:
            raise DatasetError(f"{path}: column {name!r} has rows of different lengths")
        return flat.reshape(n, flat.size // n)
    return col.to_numpy(zero_copy_only=False)


def encode_png(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # PNG is lossless whatever the level; level 1 trades a little size for speed,
    # which matters when a simulator writes thousands of frames.
    Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_image_cell(cell: Any, root: Path, key: str) -> np.ndarray:
    """An HWC uint8 RGB array from a `{bytes, path}` image struct (or raw bytes)."""
    data, rel = (cell.get("bytes"), cell.get("path")) if isinstance(cell, dict) else (cell, None)
    try:
        if data is not None:
            img = Image.open(io.BytesIO(data))
        elif rel:
            img = Image.open(root / rel)
        else:
            raise DatasetError(f"{root}: an image of {key!r} has neither bytes nor a path")
        return np.array(img.convert("RGB"))  # a writable copy, unlike np.asarray
    except (OSError, ValueError) as e:
        raise DatasetError(f"{root}: cannot decode an image of {key!r}: {e}") from None


def hf_features_metadata(features: dict[str, dict[str, Any]], columns: Sequence[str]) -> dict[bytes, bytes]:
    """The `huggingface` schema metadata, so `datasets` decodes the image structs as images."""
    hf: dict[str, Any] = {}
    for key in columns:
        ft = features[key]
        if ft["dtype"] == "image":
            hf[key] = {"_type": "Image"}
        elif list(ft["shape"]) == [1]:
            hf[key] = {"dtype": ft["dtype"], "_type": "Value"}
        else:
            hf[key] = {
                "feature": {"dtype": ft["dtype"], "_type": "Value"},
                "length": int(ft["shape"][0]),
                "_type": "Sequence",
            }
    return {b"huggingface": json.dumps({"info": {"features": hf}}).encode()}


def pandas_index_metadata(index_column: str, columns: Sequence[tuple[str, str, str]]) -> dict[bytes, bytes]:
    """Schema metadata that makes pandas read `index_column` back as the DataFrame index.

    LeRobot reads meta/tasks.parquet with pandas and looks tasks up by the index
    (the task string); pandas is not a dependency here, so the metadata is built
    by hand following Arrow's documented pandas-metadata format.
    `columns` = (name, pandas_type, numpy_type) for every column, index last.
    """
    meta = {
        "index_columns": [index_column],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": n, "field_name": n, "pandas_type": pt, "numpy_type": nt, "metadata": None}
            for n, pt, nt in columns
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    return {b"pandas": json.dumps(meta).encode()}
