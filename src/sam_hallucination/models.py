"""Networks for the deep-learning chapters.

* :class:`AirbenchNet`: a fast CIFAR CNN in the style of Keller Jordan's airbench94
  (2x2 conv stem, three conv-pool-BN-GELU groups of widths 64/256/256, max-pool,
  scaled linear head), about 2M parameters.
* :class:`ResNet18`: the CIFAR variant (3x3 stem, no max-pool).
* :class:`MLP`: the paper's 2-layer MLP (``depth`` linear layers), flattening its input.

All accept NCHW input in channels_last memory format and run under bf16 autocast.
"""

from __future__ import annotations

import math

import torch
from torch import nn

MODEL_NAMES = ("airbench", "resnet18", "mlp")


# airbench's BatchNorm "momentum" 0.6 is the weight KEPT on the old running statistic: it
# passes torch ``momentum = 1 - 0.6``, so running = 0.6 * running + 0.4 * batch.
BN_RUNNING_STAT_DECAY = 0.6


def _bn(c: int, decay: float = BN_RUNNING_STAT_DECAY, eps: float = 1e-12) -> nn.BatchNorm2d:
    # airbench: slow-moving running statistics, scale fixed at 1, only the bias learns
    bn = nn.BatchNorm2d(c, momentum=1.0 - decay, eps=eps)
    bn.weight.requires_grad_(False)
    return bn


class ConvGroup(nn.Module):
    """conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _bn(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _bn(c_out)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """airbench94-style CNN (~2M parameters at the default widths).

    The stem is a learnable 2x2 conv (airbench initialises it by patch whitening and
    freezes it; we train it, which is simpler and data-independent). The head output
    is multiplied by ``scaling`` (1/9 in airbench).
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3,
                 widths: tuple[int, int, int] = (64, 256, 256), stem: int = 24,
                 scaling: float = 1 / 9) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, stem, 2, padding=0, bias=True)
        self.act = nn.GELU()
        self.layers = nn.Sequential(ConvGroup(stem, widths[0]), ConvGroup(widths[0], widths[1]),
                                    ConvGroup(widths[1], widths[2]))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.scaling = scaling
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.stem:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.act(self.stem(x)))
        return self.head(self.pool(x).flatten(1)) * self.scaling


def airbench_widths(width: int) -> tuple[int, int, int]:
    """Group widths of the airbench CNN scaled by its first width: (w, 4w, 4w); 64 is the default."""
    return (width, 4 * width, 4 * width)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 for 32x32 inputs: 3x3 stride-1 stem, no max-pool (~11.2M parameters)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        layers, c_in = [], w
        for i, c_out in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(c_in, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


class MLP(nn.Module):
    """Fully connected ReLU network with ``depth`` linear layers; flattens its input.

    ``depth=2`` (the default) is the paper's "2-layer MLP": one hidden layer.
    """

    def __init__(self, in_features: int, hidden: int, num_classes: int, depth: int = 2) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1 (number of linear layers), got {depth}")
        dims = [in_features] + [hidden] * (depth - 1) + [num_classes]
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < depth - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_model(name: str, num_classes: int, in_channels: int = 3, **kw) -> nn.Module:
    """Build a model by name: "airbench", "resnet18" or "mlp".

    For "mlp" pass ``in_features`` or ``input_shape=(C, H, W)``, and optionally
    ``hidden`` (default 512) and ``depth`` (default 2). ``input_shape`` is ignored by
    the conv nets.
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    input_shape = kw.pop("input_shape", None)
    if name == "airbench":
        return AirbenchNet(num_classes, in_channels, **kw)
    if name == "resnet18":
        return ResNet18(num_classes, in_channels, **kw)
    if name == "mlp":
        in_features = kw.pop("in_features", None)
        if in_features is None:
            if input_shape is None:
                raise ValueError("make_model('mlp', ...) needs in_features= or input_shape=(C,H,W)")
            in_features = math.prod(input_shape)
        return MLP(in_features, kw.pop("hidden", 512), num_classes, kw.pop("depth", 2), **kw)
    raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())
