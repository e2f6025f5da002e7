"""Float arrays in a ranker's JSON state: exact, and ~4x smaller than a list of decimals."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np


def encode(array: np.ndarray) -> dict[str, Any]:
    """A float32 array as base64 in JSON."""
    data = np.ascontiguousarray(array, dtype="<f4")
    return {"dtype": "<f4", "shape": list(data.shape), "base64": base64.b64encode(data.tobytes()).decode("ascii")}


def decode(data: dict[str, Any]) -> np.ndarray:
    """The array ``encode`` wrote; ValueError for any other dtype."""
    if data.get("dtype") != "<f4":
        raise ValueError(f"unsupported dtype {data.get('dtype')!r}")
    return np.frombuffer(base64.b64decode(data["base64"]), dtype="<f4").reshape(data["shape"]).astype(np.float32)
