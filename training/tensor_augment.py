"""Batched augmentation on torch tensors: the albumentations recipe of `training.augment`, run on the GPU.

On a GPU a 48x48 net trains faster than 16 CPU cores can augment images one at a time, so the same
recipe (affine jitter, flips, brightness/contrast, random erasing) runs here on whole batches, with a
separate random draw per face. It works on CPU tensors too, which is how the tests check it.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F


class TensorAugment:
    """uint8 faces (N,H,W,C) on any device -> augmented, normalised float (N,C,S,S)."""

    def __init__(self, cfg: dict[str, Any], input_size: int, mean: Sequence[float], std: Sequence[float],
                 generator: torch.Generator | None = None) -> None:
        self.scale = tuple(cfg.get("scale", (0.85, 1.15)))
        self.translate = tuple(cfg.get("translate", (-0.1, 0.1)))
        self.rotate = tuple(cfg.get("rotate", (-15, 15)))
        self.affine_p = float(cfg.get("affine_p", 0.8))
        self.flip_p = float(cfg.get("flip_p", 0.5))
        self.brightness = float(cfg.get("brightness", 0.25))
        self.contrast = float(cfg.get("contrast", 0.25))
        self.photometric_p = float(cfg.get("photometric_p", 0.5))
        self.erase_p = float(cfg.get("erase_p", 0.5))
        self.erase_range = (0.1, float(cfg.get("erase_max", 0.35)))
        self.input_size = input_size
        self.mean, self.std = list(mean), list(std)
        self.generator = generator

    def _uniform(self, n: int, lo: float, hi: float, device: torch.device) -> torch.Tensor:
        return torch.rand(n, device=device, generator=self.generator) * (hi - lo) + lo

    def _chance(self, n: int, p: float, device: torch.device) -> torch.Tensor:
        return torch.rand(n, device=device, generator=self.generator) < p

    def affine_matrices(self, n: int, device: torch.device) -> torch.Tensor:
        """(N,2,3) output->input sampling matrices in normalised coordinates (what affine_grid wants)."""
        scale = self._uniform(n, *self.scale, device)
        angle = self._uniform(n, *self.rotate, device) * (math.pi / 180)
        tx = self._uniform(n, *self.translate, device) * 2  # fraction of the side -> [-1, 1] units
        ty = self._uniform(n, *self.translate, device) * 2
        apply = self._chance(n, self.affine_p, device)
        scale = torch.where(apply, scale, torch.ones_like(scale))
        angle = torch.where(apply, angle, torch.zeros_like(angle))
        tx = torch.where(apply, tx, torch.zeros_like(tx))
        ty = torch.where(apply, ty, torch.zeros_like(ty))
        flip = torch.where(self._chance(n, self.flip_p, device), -1.0, 1.0)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1),
                             torch.stack([sin * flip, cos, ty], 1)], 1)
        return theta

    def __call__(self, faces: torch.Tensor) -> torch.Tensor:
        n, device = faces.shape[0], faces.device
        x = faces.permute(0, 3, 1, 2).float().div_(255.0)
        size = (n, x.shape[1], self.input_size, self.input_size)
        grid = F.affine_grid(self.affine_matrices(n, device), size, align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        # brightness / contrast, like albumentations' RandomBrightnessContrast
        photo = self._chance(n, self.photometric_p, device).view(n, 1, 1, 1)
        alpha = self._uniform(n, 1 - self.contrast, 1 + self.contrast, device).view(n, 1, 1, 1)
        beta = self._uniform(n, -self.brightness, self.brightness, device).view(n, 1, 1, 1)
        x = torch.where(photo, (x * alpha + beta).clamp_(0, 1), x)
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        x = (x - mean) / std
        return self.erase(x)

    def erase(self, x: torch.Tensor) -> torch.Tensor:
        """Random erasing (Zhong et al. 2017): one rectangle per chosen face, filled with noise."""
        n, _, h, w = x.shape
        device = x.device
        eh = (self._uniform(n, *self.erase_range, device) * h).long().clamp_(min=1)
        ew = (self._uniform(n, *self.erase_range, device) * w).long().clamp_(min=1)
        top = (torch.rand(n, device=device, generator=self.generator) * (h - eh + 1)).long()
        left = (torch.rand(n, device=device, generator=self.generator) * (w - ew + 1)).long()
        ys = torch.arange(h, device=device).view(1, h, 1)
        xs = torch.arange(w, device=device).view(1, 1, w)
        inside = ((ys >= top.view(n, 1, 1)) & (ys < (top + eh).view(n, 1, 1))
                  & (xs >= left.view(n, 1, 1)) & (xs < (left + ew).view(n, 1, 1)))
        chosen = self._chance(n, self.erase_p, device).view(n, 1, 1)
        mask = (inside & chosen).unsqueeze(1)
        noise = torch.randn(x.shape, device=device, generator=self.generator)
        return torch.where(mask, noise, x)
