"""GoogLeNet / Inception-v1-style network for 48x48 faces.

Usage::

    create_model("inception_fer")

The Inception modules and their widths follow GoogLeNet (Szegedy et al. 2015; the 3x3
branch stands in for the 5x5 one, as torchvision does); the stem is cut down so a 48x48
face keeps enough resolution: 48 -> 24 (3a, 3b) -> 12 (4a-4e) -> 6 (5a, 5b).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ferkit.models.cnn import conv_bn_relu
from ferkit.models.registry import register_model


class Inception(nn.Module):
    def __init__(self, cin: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int):
        super().__init__()
        self.branch1 = conv_bn_relu(cin, c1, 1)
        self.branch2 = nn.Sequential(conv_bn_relu(cin, c3r, 1), conv_bn_relu(c3r, c3, 3))
        self.branch3 = nn.Sequential(conv_bn_relu(cin, c5r, 1), conv_bn_relu(c5r, c5, 3))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn_relu(cin, pool_proj, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionFer(nn.Module):
    head_name = "fc"

    def __init__(self, num_classes: int = 7, in_chans: int = 1, dropout: float = 0.4):
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn_relu(in_chans, 64, 3),
            nn.MaxPool2d(2),  # 24
            conv_bn_relu(64, 64, 1),
            conv_bn_relu(64, 192, 3),
        )
        self.inception3 = nn.Sequential(
            Inception(192, 64, 96, 128, 16, 32, 32), Inception(256, 128, 128, 192, 32, 96, 64)
        )
        self.pool3 = nn.MaxPool2d(2)  # 12
        self.inception4 = nn.Sequential(
            Inception(480, 192, 96, 208, 16, 48, 64),
            Inception(512, 160, 112, 224, 24, 64, 64),
            Inception(512, 128, 128, 256, 24, 64, 64),
            Inception(512, 112, 144, 288, 32, 64, 64),
            Inception(528, 256, 160, 320, 32, 128, 128),
        )
        self.pool4 = nn.MaxPool2d(2)  # 6
        self.inception5 = nn.Sequential(
            Inception(832, 256, 160, 320, 32, 128, 128), Inception(832, 384, 192, 384, 48, 128, 128)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool3(self.inception3(self.stem(x)))
        x = self.inception5(self.pool4(self.inception4(x)))
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


@register_model
def inception_fer(num_classes: int = 7, in_chans: int = 1, **kwargs) -> nn.Module:
    return InceptionFer(num_classes, in_chans, **kwargs)
