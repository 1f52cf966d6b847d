"""Our own emotion-CNN architectures, registered with timm so every tool builds them by name.

Registering (instead of a private nn.Module factory) means training, evaluation and serving all use
`timm.create_model(card["architecture"], ...)`, exactly like any stock timm architecture.
"""
from __future__ import annotations

import torch
from torch import nn
from timm.models import register_model


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class FerVGG(nn.Module):
    """VGG-style net for 48x48 faces: blocks of two 3x3 convs, then a small fully connected head.

    The flattened head keeps *where* a feature fires (mouth vs brows), which matters for aligned faces.
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        num_classes: int = 7,
        in_chans: int = 1,
        img_size: int = 48,
        hidden: int = 256,
        drop_rate: float = 0.4,
        **_: object,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for w in widths:
            layers += _conv_bn_relu(cin, w) + _conv_bn_relu(w, w) + [nn.MaxPool2d(2)]
            cin = w
        self.features = nn.Sequential(*layers)
        side = img_size // (2 ** len(widths))
        self.num_classes = num_classes
        self.num_features = cin * side * side
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(drop_rate),
            nn.Linear(self.num_features, hidden, bias=False),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate / 2),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model
def emolens_vgg_s(pretrained: bool = False, **kwargs: object) -> FerVGG:
    """1.8 M parameters, ~0.12 GMAC at 48x48: fast enough to train on a 2-core CPU in a session."""
    if pretrained:
        raise ValueError("EmoLens models are never downloaded; load the shipped weights instead.")
    return FerVGG(widths=(32, 64, 128, 256), **kwargs)


@register_model
def emolens_vgg_m(pretrained: bool = False, **kwargs: object) -> FerVGG:
    """4.7 M-conv-parameter variant (widths 64-512) for GPU training."""
    if pretrained:
        raise ValueError("EmoLens models are never downloaded; load the shipped weights instead.")
    return FerVGG(widths=(64, 128, 256, 512), hidden=512, **kwargs)


@register_model
def emolens_resnet18_small(pretrained: bool = False, **kwargs: object) -> nn.Module:
    """timm's ResNet-18 adapted to 48 px faces: a 3x3 stride-2 stem and no max-pool, so the first stage
    sees 24x24 instead of ImageNet's 4x downsampled 12x12."""
    import timm

    if pretrained:
        raise ValueError("EmoLens models are never downloaded; load the shipped weights instead.")
    kwargs.pop("img_size", None)
    model = timm.create_model("resnet18", pretrained=False, **kwargs)
    in_chans = int(kwargs.get("in_chans", 3))
    model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=2, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


class LogitEnsemble(nn.Module):
    """Several emotion nets as one: the mean of their log-probabilities (a geometric mean of the members'
    probabilities), so the ensemble exports to ONNX and is calibrated like any single model."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.log_softmax(m(x).float(), dim=1) for m in self.members]).mean(0)
