"""ResNets for faces, with torchvision's parameter names so ImageNet weights users have load.

Usage::

    create_model("resnet18_fer")                    # 3x3 stem, no max-pool: for 48x48
    create_model("resnet18_fer", stem="imagenet")   # 7x7/2 stem + max-pool: for 112+ inputs

Names match ``torchvision.models.resnet18().state_dict()`` (conv1, bn1, layer1.0.conv1, ...,
downsample.0, fc), so ``--init resnet18-imagenet.pth`` loads everything but the head;
the stem's RGB kernels are folded to grey by ``ferkit.train.finetune``.
"""

from __future__ import annotations

from torch import Tensor, nn

from ferkit.models.registry import register_model


def _downsample(cin: int, cout: int, stride: int) -> nn.Module | None:
    """The 1x1 projection of the shortcut when a block changes size (torchvision's names)."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNetFer(nn.Module):
    head_name = "fc"

    def __init__(
        self,
        layers: tuple[int, int, int, int],
        num_classes: int = 7,
        in_chans: int = 1,
        stem: str = "face48",
        dropout: float = 0.2,
        block: type[nn.Module] = BasicBlock,
    ):
        super().__init__()
        if stem == "face48":  # keep resolution: 48 -> 48 -> 24 -> 12 -> 6
            self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        elif stem == "imagenet":
            self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            raise ValueError(f"unknown stem {stem!r}; choose 'face48' or 'imagenet'")
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        widths, cin, grow = (64, 128, 256, 512), 64, block.expansion
        for i, (w, n) in enumerate(zip(widths, layers, strict=True)):
            blocks = [block(cin, w, 1 if i == 0 else 2)] + [block(w * grow, w) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = w * grow
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(512 * grow, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block: starts as identity
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
            elif isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


@register_model
def resnet18_fer(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module:
    return ResNetFer((2, 2, 2, 2), num_classes, in_chans, **kwargs)


@register_model
def resnet34_fer(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module:
    return ResNetFer((3, 4, 6, 3), num_classes, in_chans, **kwargs)
