"""Plain CNNs for 48x48 faces: the baseline CNN, mini-Xception and the VGG variant.

Usage::

    create_model("mini_xception")   # ~60k parameters, real time
    create_model("vgg_fer")         # 4 stages of double 3x3 conv + BN
"""

from __future__ import annotations

from torch import Tensor, nn

from ferkit.models.registry import register_model


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BaselineCNN(nn.Module):
    """The simple baseline FER CNN (arXiv 2004.11823): conv blocks, max-pool, dropout, dense."""

    head_name = "classifier"

    def __init__(self, num_classes: int = 7, in_chans: int = 1, width: int = 32, dropout: float = 0.4):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn_relu(in_chans, w),
            conv_bn_relu(w, w),
            nn.MaxPool2d(2),  # 24
            nn.Dropout(0.1),
            conv_bn_relu(w, 2 * w),
            conv_bn_relu(2 * w, 2 * w),
            nn.MaxPool2d(2),  # 12
            nn.Dropout(0.2),
            conv_bn_relu(2 * w, 4 * w),
            conv_bn_relu(4 * w, 4 * w),
            nn.MaxPool2d(2),  # 6
            nn.Dropout(0.3),
        )
        self.pool = nn.AdaptiveAvgPool2d(3)  # any input size -> (B, 4w, 3, 3)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * w * 9, 256),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)))


class SeparableConv(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),  # depthwise
            nn.Conv2d(cin, cout, 1, bias=False),  # pointwise
        )


class XceptionBlock(nn.Module):
    """Residual module of mini-Xception: two separable convs + max-pool, 1x1 strided shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))
        self.body = nn.Sequential(
            SeparableConv(cin, cout),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            SeparableConv(cout, cout),
            nn.BatchNorm2d(cout),
            nn.MaxPool2d(3, stride=2, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)


class MiniXception(nn.Module):
    """mini-Xception (Arriaga et al. 2017), the real-time network of the ``fer`` package."""

    head_name = "head"

    def __init__(self, num_classes: int = 7, in_chans: int = 1, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        self.stem = nn.Sequential(conv_bn_relu(in_chans, 8), conv_bn_relu(8, 8))
        blocks, cin = [], 8
        for w in widths:
            blocks.append(XceptionBlock(cin, w))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Conv2d(cin, num_classes, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)))


class VGGFer(nn.Module):
    """VGG variant for FER (Khaireddin & Chen 2021): 4 stages of double 3x3 conv + BN, max-pool.

    The head flattens the 3x3x512 map of a 48x48 input into a small MLP (the paper's two
    4096-wide layers would make a 140 MB model for no measured gain at this size).
    """

    head_name = "classifier"

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        hidden: int = 512,
        dropout: float = 0.5,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for w in widths:
            layers += [conv_bn_relu(cin, w), conv_bn_relu(w, w), nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(3)  # 48 -> 3 after 4 pools; other sizes pooled to 3
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(cin * 9, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)))


@register_model
def baseline_cnn(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module:
    return BaselineCNN(num_classes, in_chans, **kwargs)


@register_model
def mini_xception(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module:
    return MiniXception(num_classes, in_chans, **kwargs)


@register_model
def vgg_fer(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module:
    return VGGFer(num_classes, in_chans, **kwargs)
