"""Read TensorFlow.js weights: a ``model.json`` (layers or graph model) or a bare weights
manifest (``*-weights_manifest.json``, as face-api ships), with its binary shards.

Usage::

    weights = read_tfjs_weights("model/face_expression_model-weights_manifest.json")
    weights["dense0/conv0/filters"].shape      # (3, 3, 3, 32), float32, TF.js layout (HWIO)

TF.js stores each weight group as one or more binary shards, tensors back to back in the
manifest's order, little-endian. A tensor may be quantised: ``uint8``/``uint16`` values with
``scale`` and ``min`` (value = q * scale + min) or ``float16``. Everything is returned as
float32 (int32 as int32). Needs only numpy; errors name the file and the problem.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ferkit.errors import DataError

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANT = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


def _manifest(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(str(path), f"not a readable TF.js model or weights manifest ({exc})") from None
    if isinstance(data, dict):  # model.json: {"modelTopology": ..., "weightsManifest": [...]}
        data = data.get("weightsManifest")
    if not isinstance(data, list) or not all(isinstance(g, dict) and "paths" in g for g in data):
        raise DataError(str(path), "no weights manifest in it (expected a list of {paths, weights})")
    return data


def read_tfjs_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every tensor of a TF.js model.json or weights manifest, by name, dequantised."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    for group in _manifest(path):
        shards = [path.parent / p for p in group["paths"]]
        missing = [str(s) for s in shards if not s.is_file()]
        if missing:
            raise DataError(str(path), f"weight shard(s) missing: {', '.join(missing)}")
        buffer = b"".join(s.read_bytes() for s in shards)
        offset = 0
        for spec in group.get("weights", []):
            name, shape = spec["name"], [int(d) for d in spec.get("shape", [])]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            stored = _QUANT.get(quant["dtype"]) if quant else _DTYPES.get(spec.get("dtype", "float32"))
            if stored is None:
                raise DataError(str(path), f"tensor {name!r}: dtype {spec.get('dtype')} is not supported")
            size = count * np.dtype(stored).itemsize
            if offset + size > len(buffer):
                raise DataError(str(path), f"tensor {name!r} runs past the end of its shards (truncated?)")
            raw = np.frombuffer(buffer, dtype=np.dtype(stored).newbyteorder("<"), count=count, offset=offset)
            offset += size
            if quant and quant["dtype"] in ("uint8", "uint16"):
                if "scale" not in quant:
                    raise DataError(str(path), f"tensor {name!r}: quantised without a scale")
                values = raw.astype(np.float32) * np.float32(quant["scale"]) + np.float32(
                    quant.get("min", 0.0)
                )
            else:
                values = raw.astype(_DTYPES.get(spec.get("dtype", "float32"), np.float32))
            out[name] = values.reshape(shape)
        if offset != len(buffer):
            raise DataError(
                str(path), f"{len(buffer) - offset} bytes left over in the shards of a weight group"
            )
    return out
