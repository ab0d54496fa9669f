"""CycleGAN networks sized for 48x48 grey faces (after Zhu et al. 2017).

Usage::

    g = ResnetGenerator(in_chans=1, ngf=32, n_blocks=6)    # (N, 1, 48, 48) in [-1, 1] -> same
    d = PatchDiscriminator(in_chans=1, ndf=64, n_layers=3)  # (N, 1, 48, 48) -> (N, 1, 10, 10) patch scores

The generator is c7s1-ngf, two stride-2 downsamplings, ``n_blocks`` residual blocks at
4*ngf channels (12x12 for 48x48 input), two upsamplings (nearest + conv, which avoids the
checkerboard of transposed convolutions) and a c7s1 output with tanh. Instance norm and
reflection padding as in the paper. The discriminator is a PatchGAN; with three layers each
output sees a 34x34 patch of a 48x48 face (the paper's 70x70 on 256x256 is ~27% of the side).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


def _conv_block(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    pad = k // 2
    return [
        nn.ReflectionPad2d(pad) if stride == 1 else nn.ZeroPad2d(pad),
        nn.Conv2d(cin, cout, k, stride=stride, bias=False),
        nn.InstanceNorm2d(cout, affine=True),
        nn.ReLU(inplace=True),
    ]


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=False),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, in_chans: int = 1, ngf: int = 32, n_blocks: int = 6) -> None:
        super().__init__()
        if ngf < 1 or n_blocks < 0:
            raise ValueError(f"ngf must be >= 1 and n_blocks >= 0, got {ngf}, {n_blocks}")
        self.args = {"in_chans": in_chans, "ngf": ngf, "n_blocks": n_blocks}
        layers: list[nn.Module] = _conv_block(in_chans, ngf, 7)
        layers += _conv_block(ngf, ngf * 2, 3, stride=2)
        layers += _conv_block(ngf * 2, ngf * 4, 3, stride=2)
        layers += [ResidualBlock(ngf * 4) for _ in range(n_blocks)]
        for cin, cout in ((ngf * 4, ngf * 2), (ngf * 2, ngf)):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), *_conv_block(cin, cout, 3)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, in_chans, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"generator input sides must be multiples of 4, got {tuple(x.shape[-2:])}")
        return self.net(x)


class PatchDiscriminator(nn.Module):
    def __init__(self, in_chans: int = 1, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.args = {"in_chans": in_chans, "ndf": ndf, "n_layers": n_layers}
        layers: list[nn.Module] = [nn.Conv2d(in_chans, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        ch = ndf
        for i in range(1, n_layers):
            stride = 2 if i < n_layers - 1 else 1
            out = min(ndf * 2**i, ndf * 8)
            layers += [
                nn.Conv2d(ch, out, 4, stride, 1, bias=False),
                nn.InstanceNorm2d(out, affine=True),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch = out
        layers += [nn.Conv2d(ch, 1, 4, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Normal(0, 0.02) for convolutions, Normal(1, 0.02) for norm scales, as in the paper's code."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.InstanceNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


class ImagePool:
    """The history buffer of Shrivastava et al.: half the time a fake is swapped for an older one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[Tensor] = []

    def query(self, batch: Tensor, gen: torch.Generator) -> Tensor:
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.cpu())
                out.append(image)
            elif torch.rand(1, generator=gen).item() < 0.5:
                j = int(torch.randint(self.size, (1,), generator=gen))
                old = self.images[j]
                self.images[j] = image.cpu()
                out.append(old.to(batch.device))
            else:
                out.append(image)
        return torch.cat(out)

    def state(self) -> Tensor:
        return torch.cat(self.images) if self.images else torch.empty(0)

    def load(self, state: Tensor) -> None:
        self.images = [t.unsqueeze(0) for t in state] if state.numel() else []


@dataclass
class CycleGan:
    g_ab: ResnetGenerator
    g_ba: ResnetGenerator
    d_a: PatchDiscriminator
    d_b: PatchDiscriminator

    @classmethod
    def create(cls, cfg: Any) -> CycleGan:
        """Fresh networks sized by a GanConfig's ngf, n_blocks, ndf and n_layers."""
        gan = cls(
            ResnetGenerator(1, cfg.ngf, cfg.n_blocks),
            ResnetGenerator(1, cfg.ngf, cfg.n_blocks),
            PatchDiscriminator(1, cfg.ndf, cfg.n_layers),
            PatchDiscriminator(1, cfg.ndf, cfg.n_layers),
        )
        for net in gan.nets().values():
            init_weights(net)
        return gan

    def nets(self) -> dict[str, nn.Module]:
        return {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}

    def to(self, device: torch.device) -> CycleGan:
        for net in self.nets().values():
            net.to(device)
        return self
