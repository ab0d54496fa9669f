"""ImageNet backbones with torchvision's exact module and parameter names, for transfer learning.

Usage::

    create_model("resnet50", num_classes=7, in_chans=1)
    ferkit train --model mobilenet_v2 --image_size 96 --init https://download.pytorch.org/models/mobilenet_v2-b0353104.pth

``resnet50``, ``vgg16_bn``, ``mobilenet_v2`` and ``efficientnet_b0`` are written here
(torchvision does not run with the CPU torch build ferkit uses) so that
``torchvision.models.<name>(weights=...).state_dict()`` loads key for key: with 1000
classes and 3 channels they have 25,557,032 / 138,365,992 / 3,504,872 / 5,288,548
parameters, as torchvision's do (tested). ``--init`` folds the RGB stem to grey and drops
the 1000-class head (``--init_backbone_only``). They take any input from 32x32 (the
default 48x48 works; ImageNet weights like 96-224: ``--image_size``).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from ferkit.models.registry import register_model
from ferkit.models.resnet import Bottleneck, ResNetFer


# ----------------------------------------------------------------------------- VGG-16 (BN)
class Vgg16Bn(nn.Module):
    head_name = "classifier"
    _CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for v in self._CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [
                    nn.Conv2d(cin, int(v), 3, padding=1),
                    nn.BatchNorm2d(int(v)),
                    nn.ReLU(inplace=True),
                ]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


# ----------------------------------------------------------------------------- MobileNetV2
def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class ConvNormAct(nn.Sequential):
    """torchvision's Conv2dNormActivation: 0 conv, 1 norm, 2 activation (if any)."""

    def __init__(
        self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act=nn.ReLU6, eps=1e-5
    ):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=eps),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvNormAct(cin, hidden, 1))
        layers += [
            ConvNormAct(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    head_name = "classifier"
    _SETTING = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.2):
        super().__init__()
        cin = 32
        features: list[nn.Module] = [ConvNormAct(in_chans, cin, stride=2)]
        for t, c, n, s in self._SETTING:
            for i in range(n):
                features.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        features.append(ConvNormAct(cin, 1280, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(x.flatten(1))


# ----------------------------------------------------------------------------- EfficientNet-B0
class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.SiLU(inplace=True)
        self.scale_activation = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * scale


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int, drop: float):
        super().__init__()
        hidden = _make_divisible(cin * expand)
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(ConvNormAct(cin, hidden, 1, act=nn.SiLU))
        layers += [
            ConvNormAct(hidden, hidden, k, stride, groups=hidden, act=nn.SiLU),
            SqueezeExcitation(hidden, max(1, cin // 4)),
            ConvNormAct(hidden, cout, 1, act=None),
        ]
        self.block = nn.Sequential(*layers)
        self.drop = drop  # stochastic depth (per sample, training only)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if not self.use_res_connect:
            return out
        if self.training and self.drop > 0:
            keep = 1 - self.drop
            mask = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep) / keep
            out = out * mask
        return x + out


class EfficientNetB0(nn.Module):
    head_name = "classifier"
    # expand, kernel, stride, in, out, layers (torchvision's efficientnet_b0: width 1.0, depth 1.0)
    _STAGES = (
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    )

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.2, drop_path: float = 0.2
    ):
        super().__init__()
        total = sum(s[-1] for s in self._STAGES)
        features: list[nn.Module] = [ConvNormAct(in_chans, 32, 3, 2, act=nn.SiLU)]
        done = 0
        for expand, k, stride, cin, cout, n in self._STAGES:
            stage = []
            for i in range(n):
                stage.append(
                    MBConv(
                        cin if i == 0 else cout,
                        cout,
                        k,
                        stride if i == 0 else 1,
                        expand,
                        drop_path * done / total,
                    )
                )
                done += 1
            features.append(nn.Sequential(*stage))
        features.append(ConvNormAct(320, 1280, 1, act=nn.SiLU))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout, inplace=True), nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


@register_model
def resnet50(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module:
    """torchvision's ResNet-50: ImageNet stem, bottleneck blocks, no dropout (a ResNetFer)."""
    kwargs = {"stem": "imagenet", "dropout": 0.0} | kwargs
    return ResNetFer((3, 4, 6, 3), num_classes, in_chans, block=Bottleneck, **kwargs)


@register_model
def vgg16_bn(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module:
    return Vgg16Bn(num_classes, in_chans, **kwargs)


@register_model
def mobilenet_v2(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module:
    return MobileNetV2(num_classes, in_chans, **kwargs)


@register_model
def efficientnet_b0(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module:
    return EfficientNetB0(num_classes, in_chans, **kwargs)


# torchvision's published ImageNet weights (``ferkit train --model NAME --init imagenet``).
IMAGENET_WEIGHTS = {
    "resnet50": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    "vgg16_bn": "https://download.pytorch.org/models/vgg16_bn-6c64b313.pth",
    "mobilenet_v2": "https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
    "efficientnet_b0": "https://download.pytorch.org/models/efficientnet_b0_rwightman-3dd342df.pth",
}
