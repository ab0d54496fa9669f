"""face-api's expression network (``@vladmandic/face-api``, MIT), rebuilt in PyTorch.

Usage::

    from ferkit.importers.tfjs import read_tfjs_weights
    net = create_model("faceapi_expression")
    load_faceapi_weights(net, read_tfjs_weights("model/face_expression_model-weights_manifest.json"))

The network, as face-api's TypeScript defines it (``FaceFeatureExtractor`` + ``FaceProcessor``):
a 112x112 RGB input, minus the mean RGB (122.782, 117.001, 104.298) and divided by 255; four
"dense blocks" of four convolutions each, the first of each block with stride 2 (a plain
3x3 convolution in the first block, depthwise-separable ones everywhere else), each block's
outputs summed densely (out4 = relu(out1 + out2 + out3 + conv3(...))); a 7x7 average pool;
one fully connected layer to 7 expressions (face-api's order: neutral, happy, sad, angry,
fearful, disgusted, surprised). The final pool is taken as a global mean (identical at
112 px), so the network also runs on other sizes (48x48 grey faces for training). TF.js
"same" padding puts the odd pixel after, not before,
which :func:`_same` reproduces, so outputs match TF.js to float rounding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferkit.models.registry import register_model

FACEAPI_LABELS = ("neutral", "happy", "sad", "angry", "fear", "disgust", "surprise")
FACEAPI_MEAN_RGB = (122.782, 117.001, 104.298)  # subtracted from 0-255 pixels, then / 255


def _same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TF's "same" padding: total = max((out - 1) * stride + kernel - size, 0), the odd one after."""
    size = x.shape[-1]
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))


class _SepConv(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(cin, cin, 3, stride, 0, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(_same(x, 3, self.stride)))


class _Plain(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv2d(cin, cout, 3, stride, 0, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(_same(x, 3, self.stride))


class _DenseBlock4(nn.Module):
    def __init__(self, cin: int, cout: int, first: bool):
        super().__init__()
        self.conv0 = (_Plain if first else _SepConv)(cin, cout, 2)
        self.conv1, self.conv2, self.conv3 = (_SepConv(cout, cout, 1) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = F.relu(self.conv0(x))
        out2 = self.conv1(out1)
        out3 = self.conv2(F.relu(out1 + out2))
        out4 = self.conv3(F.relu(out1 + out2 + out3))
        return F.relu(out1 + out2 + out3 + out4)


class FaceApiExpressionNet(nn.Module):
    """Input: (N, 3, 112, 112) RGB already normalised ((pixel - mean RGB) / 255); output: logits."""

    def __init__(self, num_classes: int = 7, in_chans: int = 3, widths=(32, 64, 128, 256)):
        super().__init__()
        chans = [in_chans, *widths]
        self.blocks = nn.Sequential(*(_DenseBlock4(chans[i], chans[i + 1], i == 0) for i in range(4)))
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        # face-api pools 7x7 with stride 2, which at its 112 px input is the global mean of
        # the 7x7 map; the global mean is the same there and lets the net run at any size.
        return self.fc(x.mean(dim=(2, 3)))


@register_model
def faceapi_expression(num_classes: int = 7, in_chans: int = 3, **kwargs) -> nn.Module:
    """face-api's expression network (112x112 RGB); load its weights with load_faceapi_weights."""
    return FaceApiExpressionNet(num_classes=num_classes, in_chans=in_chans, **kwargs)


def load_faceapi_weights(net: FaceApiExpressionNet, weights: dict[str, np.ndarray]) -> FaceApiExpressionNet:
    """Copy face-api's tensors (TF.js layouts: HWIO filters, HWC1 depthwise) into ``net``."""
    state = {}
    for b, block in enumerate(net.blocks):
        prefix = f"dense{b}"
        for c in range(4):
            conv = getattr(block, f"conv{c}")
            key = f"blocks.{b}.conv{c}"
            if isinstance(conv, _Plain):
                state[f"{key}.conv.weight"] = np.transpose(weights[f"{prefix}/conv{c}/filters"], (3, 2, 0, 1))
            else:
                dw = weights[f"{prefix}/conv{c}/depthwise_filter"]  # (3, 3, C, 1)
                state[f"{key}.depthwise.weight"] = np.transpose(dw, (2, 3, 0, 1))
                pw = weights[f"{prefix}/conv{c}/pointwise_filter"]  # (1, 1, C, O)
                state[f"{key}.pointwise.weight"] = np.transpose(pw, (3, 2, 0, 1))
            bias_name = f"{key}.conv.bias" if isinstance(conv, _Plain) else f"{key}.pointwise.bias"
            state[bias_name] = weights[f"{prefix}/conv{c}/bias"]
    state["fc.weight"] = weights["fc/weights"].T
    state["fc.bias"] = weights["fc/bias"]
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v, np.float32)) for k, v in state.items()})
    return net
