"""face-api's expression model (``@vladmandic/face-api`` on npm, MIT) as a ferkit ONNX model.

Usage::

    report = import_faceapi_expression("vladmandic-face-api-1.7.15.tgz", "faceapi_expression.onnx")
    # or the unpacked package folder, its model/ folder, or the weights manifest itself

    ferkit import faceapi vladmandic-face-api-1.7.15.tgz --out faceapi_expression.onnx

The weights are read from the TF.js manifest (:mod:`ferkit.importers.tfjs`), loaded into the
PyTorch rebuild (:mod:`ferkit.models.faceapi`, checked against TensorFlow.js by
``tools/faceapi_reference.mjs``) and exported with face-api's preprocessing in the graph:
RGB pixels in [0, 1], 112x112, minus face-api's mean RGB, softmax over its 7 expressions.
Its weights keep TF.js's uint8 coding (``ferkit.card.compact_weights``): 0.49 MB, not 1.42.
The card records the package, its version, the sha256 of the file read and its licence.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkit.errors import DataError
from ferkit.importers.npm import package_info, sha256_file, sha256_files, unpacked

MANIFEST = "face_expression_model-weights_manifest.json"


@dataclass
class ImportReport:
    path: Path
    max_abs_diff: float  # ONNX Runtime vs the PyTorch rebuild on random faces
    source: dict


def _find(root: Path) -> tuple[Path, dict]:
    """The weights manifest under ``root`` and what the package says of itself."""
    for candidate in (root / MANIFEST, root / "model" / MANIFEST, root / "package" / "model" / MANIFEST):
        if candidate.is_file():
            info = package_info(candidate.parent.parent, "@vladmandic/face-api")
            return candidate, info
    raise DataError(str(root), f"no {MANIFEST} in it (give face-api's npm tarball, package or model folder)")


def import_faceapi_expression(
    source: str | os.PathLike, out: str | os.PathLike, state_dict: str | os.PathLike | None = None
) -> ImportReport:
    """face-api's expression model from ``source`` (npm tarball, package folder, model folder or
    manifest) to an ONNX file with a ferkit card at ``out``; with ``state_dict``, its PyTorch
    weights there too (a ``--init`` for ``ferkit train --model faceapi_expression``), the
    classifier's rows in FER-2013's class order (angry ... neutral), as ferkit trains."""
    source, out = Path(source), Path(out)
    if not source.exists():
        raise DataError(str(source), "no such file or folder")
    if source.is_file() and source.name.endswith((".tgz", ".tar.gz")):
        wanted = (MANIFEST, "face_expression_model.bin")
        with unpacked(source, lambda name: name.endswith(wanted)) as tmp:
            manifest, info = _find(tmp)
            info["sha256"], info["file"] = sha256_file(source), source.name
            return _export(manifest, out, info, state_dict)
    manifest, info = _find(source.parent if source.is_file() else source)
    shards = [manifest.parent / p for group in json.loads(manifest.read_text()) for p in group["paths"]]
    info["sha256"] = sha256_files([manifest, *shards])  # the manifest and its shards, in order
    info["file"] = f"{manifest.name} + {len(shards)} shard(s)"
    return _export(manifest, out, info, state_dict)


def _export(manifest: Path, out: Path, info: dict, state_dict: str | os.PathLike | None) -> ImportReport:
    import onnxruntime as ort
    import torch

    from ferkit.card import ModelCard, compact_weights, save_onnx
    from ferkit.export import ProbabilityModel, onnx_program
    from ferkit.importers.tfjs import read_tfjs_weights
    from ferkit.models import create_model
    from ferkit.models.faceapi import FACEAPI_LABELS, FACEAPI_MEAN_RGB, load_faceapi_weights
    from ferkit.models.registry import count_macs

    net = create_model("faceapi_expression", in_chans=3).eval()
    load_faceapi_weights(net, read_tfjs_weights(manifest))
    if state_dict is not None:  # the head in FER-2013's class order, as ferkit trains
        from ferkit.labels import FER2013
        from ferkit.utils import atomic_path

        order = [FACEAPI_LABELS.index(name) for name in FER2013.names]
        state = dict(net.state_dict())
        state["fc.weight"], state["fc.bias"] = state["fc.weight"][order], state["fc.bias"][order]
        with atomic_path(state_dict) as tmp:
            torch.save(state, tmp)

    # RGB in [0, 1] -> face-api's (pixel - mean RGB) / 255, softmax over its classes
    wrapped = ProbabilityModel(net, [m / 255 for m in FACEAPI_MEAN_RGB], 1.0).eval()
    program = onnx_program(wrapped, torch.rand(2, 3, 112, 112))
    card = ModelCard(
        labels=FACEAPI_LABELS,
        input_size=112,
        color="rgb",
        architecture="faceapi_expression",
        normalization={"mean": [m / 255 for m in FACEAPI_MEAN_RGB], "std": 1.0, "applied_in_graph": True},
        license=(
            f"{info['license']} ({info['package']} {info['version']}: {info['license_text']}); "
            "the package does not state the training data"
        ),
        extra={
            "source": {k: info[k] for k in ("package", "version", "file", "sha256", "license")},
            "input_range": "float32 RGB pixels in [0, 1], shape (batch, 3, 112, 112)",
            "output": "probabilities (softmax in graph)",
            "parameters": int(sum(p.numel() for p in net.parameters())),
            "macs": count_macs(net, 112, 3),
        },
    )
    # TF.js stored the weights as uint8 codes: kept as such (indices into each tensor's table
    # of float32 values, folded back at load), the file is a third of the size, same outputs
    proto = program.model_proto
    compact_weights(proto)
    save_onnx(proto, card, out)
    check = np.random.default_rng(0).random((8, 3, 112, 112), dtype=np.float32)
    with torch.no_grad():
        expected = wrapped(torch.from_numpy(check)).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"pixels": check})[0]
    return ImportReport(out, float(np.abs(got - expected).max()), card.extra["source"])
