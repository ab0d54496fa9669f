"""Expression classifiers on ONNX Runtime: numpy in, probabilities out; and the one model loader.

Usage::

    model = load_model("fast")         # or "my.onnx", "ensemble.json", "runs/vgg_fer-.../", "best.pt"
    clf = OnnxClassifier("model.onnx")
    clf.labels                         # ('angry', 'disgust', ...)
    probs = clf.predict_proba(faces)   # faces: (N, 48, 48) uint8 grey -> (N, K) float32

ferkit's ONNX files carry their labels and preprocessing in ``metadata_props`` and take
float32 pixels in [0, 1] (normalisation and softmax are inside the graph), so the same
file gives the same numbers wherever it runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ferkit.card import INT4_WEIGHTS, ModelCard
from ferkit.errors import ModelError
from ferkit.runtime.catalog import member_path, resolve_model


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


class _Carded:
    """Labels and input size come from the model's card (``self.card``)."""

    card: ModelCard

    @property
    def labels(self) -> tuple[str, ...]:
        return self.card.labels

    @property
    def input_size(self) -> int:
        return self.card.input_size


def _widen_int4(model):
    """The model (a proto, changed in place) with its INT4 initializers as INT8 of the same values."""
    from onnx import TensorProto, numpy_helper

    for t in model.graph.initializer:
        if t.data_type == TensorProto.INT4:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.int8), t.name))
    return model


FEATURES = "features"  # the extra output of a backbone: the input of its last layer


def with_features_output(model, source: str):
    """The model (a proto, changed in place) also returning ``features``: the tensor its last
    fully connected layer (Gemm, or MatMul + Add) reads, as that layer sees it (int8 models:
    after the quantise-dequantise pair). The features a classifier head is fitted on."""
    from onnx import TensorProto, helper

    producer = {out: node for node in model.graph.node for out in node.output}
    softmax = [n for n in model.graph.node if n.op_type == "Softmax"]
    tensor = softmax[0].input[0] if len(softmax) == 1 else None
    while tensor in producer and producer[tensor].op_type in ("QuantizeLinear", "DequantizeLinear", "Add"):
        node = producer[tensor]
        if node.op_type == "Add" and not (
            node.input[0] in producer and producer[node.input[0]].op_type == "MatMul"
        ):
            break
        tensor = node.input[0]
    layer = producer.get(tensor) if tensor else None
    if layer is None or layer.op_type not in ("Gemm", "MatMul"):
        raise ModelError(
            f"{source}: no last fully connected layer before a softmax: not usable as a backbone"
        )
    model.graph.node.append(
        helper.make_node("Identity", [layer.input[0]], [FEATURES], name="ferkit_features")
    )
    model.graph.output.append(helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, None))
    return model


class OnnxClassifier(_Carded):
    """An exported ferkit model (``.onnx``) on ONNX Runtime's CPU provider."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
        features: bool = False,
    ):
        self.path = Path(path)
        if not self.path.exists():
            raise ModelError(f"{self.path}: model file not found")
        # Stored 4-bit (export.quantize_int8(weight_bits=4)): widened to int8 so ONNX Runtime
        # runs its int8 kernels (left as int4 it dequantises every call: 6.7 instead of 1.2 ms
        # a face for full-width vgg_fer). A backbone (``features``) is changed before its one
        # session opens; a plain model opens from its file, and again only when widened.
        if features:
            proto = self._proto()
            meta = {p.key: p.value for p in proto.metadata_props}
            proto = with_features_output(_widen_int4(proto), str(self.path))
            self.session = self._session(proto.SerializeToString(), threads, providers)
        else:
            self.session = self._session(str(self.path), threads, providers)
            meta = self.session.get_modelmeta().custom_metadata_map
            if INT4_WEIGHTS in meta.get("quantization", ""):
                proto = _widen_int4(self._proto())
                self.session = self._session(proto.SerializeToString(), threads, providers)
        self.card = ModelCard.from_metadata(meta, str(self.path))
        self.input_name = self.session.get_inputs()[0].name

    def _proto(self):
        import onnx

        try:
            return onnx.load(str(self.path))
        except Exception as exc:  # protobuf's DecodeError and friends for a bad file
            raise ModelError(
                f"{self.path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})"
            ) from exc

    def _session(
        self, model: str | bytes, threads: int | None, providers: list[str] | None, optimise: bool = True
    ):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if not optimise:  # the reference numerics: each operator as the graph states it
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No spin-waiting after a call: between calls the cores go to the face detector
        # (measured: a 640x480 frame's detect + classify went from 7.9 to 6.0 ms on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            return ort.InferenceSession(model, options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise ModelError(
                f"{self.path}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})"
            ) from exc

    def prepare(self, faces: np.ndarray) -> np.ndarray:
        """uint8 faces (N, H, W) or (N, H, W, 3) -> float32 (N, C, S, S) in [0, 1]."""
        faces = np.asarray(faces)
        if faces.ndim == 2 or (faces.ndim == 3 and self.card.color == "rgb" and faces.shape[-1] == 3):
            faces = faces[None]
        size = self.input_size
        if faces.shape[1:3] != (size, size):
            faces = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in faces])
        if self.card.color == "gray":
            if faces.ndim == 4:
                faces = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in faces])
            x = faces[:, None]
        else:
            if faces.ndim == 3:
                faces = np.repeat(faces[..., None], 3, axis=3)
            x = faces.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32) * np.float32(1 / 255)

    def predict_proba(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K) for uint8 face crops."""
        x = self.prepare(faces)
        if len(x) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        out = [
            self.session.run(None, {self.input_name: x[i : i + batch_size]})[0]
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out).astype(np.float32)

    def reference_proba(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """``predict_proba`` by the reference numerics: ONNX Runtime with graph optimisation
        off (dequantise, float operator, quantise; no fused integer kernel), the answers every
        CPU should give. For checking a quantised file; it opens a session each call."""
        session = self._session(_widen_int4(self._proto()).SerializeToString(), None, None, optimise=False)
        x = self.prepare(faces)
        out = [
            session.run(None, {self.input_name: x[i : i + batch_size]})[0]
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(out).astype(np.float32)

    def features(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The (N, D) features its last layer reads (a model opened with ``features=True``)."""
        names = [o.name for o in self.session.get_outputs()]
        if FEATURES not in names:
            raise ModelError(f"{self.path}: opened without features=True")
        x = self.prepare(faces)
        out = [
            self.session.run([FEATURES], {self.input_name: x[i : i + batch_size]})[0]
            for i in range(0, len(x), batch_size)
        ]
        feats = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
        return feats.reshape(len(feats), -1).astype(np.float32)


def joined_features(backbones: list[OnnxClassifier], faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Each backbone's features of ``faces``, side by side: (N, sum of their sizes)."""
    return np.concatenate([b.features(faces, batch_size) for b in backbones], axis=1)


class HeadClassifier(_Carded):
    """A classifier head fitted on shipped models' features (``ferkit adapt``).

    The ``.onnx`` file holds the head alone (features in, probabilities out; its card has
    ``kind: head`` and names the backbones in ``members``). Each face goes through every
    backbone (as its own classifier frames it), their features are joined and the head
    classifies them: a new class set or a new domain for a few kilobytes.
    """

    def __init__(
        self, path: str | os.PathLike, *, threads: int | None = None, head: OnnxClassifier | None = None
    ):
        self.path = Path(path)
        self.head = head or OnnxClassifier(self.path, threads=threads)
        card = self.head.card
        if card.kind != "head" or not card.members:
            raise ModelError(
                f"{self.path}: not a head model (needs kind 'head' and its backbones as members)"
            )
        self.backbones = [
            OnnxClassifier(member_path(self.path, m), threads=threads, features=True) for m in card.members
        ]
        self.card = card

    def features(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return joined_features(self.backbones, faces, batch_size)

    def predict_proba(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        feats = self.features(faces, batch_size)
        if len(feats) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        return self.head.session.run(None, {self.head.input_name: feats})[0].astype(np.float32)


class EnsembleClassifier(_Carded):
    """Several ferkit ONNX models as one: the weighted mean of their probabilities.

    Described by a JSON card (``"kind": "ensemble"``, ``members``: shipped names or ``.onnx``
    paths relative to the card, ``member_weights``, ``labels`` and the usual card fields), so
    it loads, evaluates and recognises like any single model. The weighted mean is linear, so
    flip TTA on the ensemble equals the weighted mean of each member's flip TTA.
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        self.path = Path(path)
        try:
            card = ModelCard.read_json(self.path)
        except ModelError as exc:
            raise ModelError(f"not an ensemble card: {exc}") from exc
        if card.kind != "ensemble" or len(card.members) != len(card.member_weights) or not card.members:
            raise ModelError(
                f"{self.path}: not an ensemble card (needs kind 'ensemble', members, one weight each)"
            )
        self.members = []
        for member in card.members:
            clf = OnnxClassifier(member_path(self.path, member), threads=threads)
            if clf.labels != card.labels:
                raise ModelError(
                    f"{self.path}: member {member} predicts {clf.labels}, the card says {card.labels}"
                )
            self.members.append(clf)
        self.weights = np.asarray(card.member_weights, np.float64) / float(np.sum(card.member_weights))
        self.card = card

    def predict_proba(self, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
        stack = np.stack([m.predict_proba(faces, batch_size) for m in self.members])
        return np.tensordot(self.weights, stack, axes=1).astype(np.float32)


def load_classifier(path: str | os.PathLike, *, threads: int | None = None):
    """An ``.onnx`` model or an ensemble card (``.json``) -> a classifier with predict_proba."""
    if Path(path).suffix == ".json":
        return EnsembleClassifier(path, threads=threads)
    clf = OnnxClassifier(path, threads=threads)
    return HeadClassifier(path, threads=threads, head=clf) if clf.card.kind == "head" else clf


def load_model(spec: str | os.PathLike, *, threads: int | None = None):
    """The one loader: shipped names, ``.onnx`` files and ensemble ``.json`` cards run on ONNX
    Runtime (no torch); run folders and ``.pt`` checkpoints run on torch (``ferkit[train]``).

    Everything returned has ``name``, ``labels``, ``input_size``, ``card`` and ``predict_proba``.
    """
    path = Path(str(spec)).expanduser()
    if path.is_dir() or path.suffix in (".pt", ".pth"):
        if not path.exists():
            raise ModelError(f"{path}: model not found")
        try:
            from ferkit.evaluate.predictors import TorchPredictor
        except ModuleNotFoundError as exc:
            raise ModelError(f'{path}: a checkpoint needs torch: pip install "ferkit[train]"') from exc
        model = TorchPredictor(path)
    else:
        model = load_classifier(resolve_model(spec), threads=threads)
    model.name = str(spec)
    return model
