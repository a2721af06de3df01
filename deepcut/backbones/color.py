"""A weight-free backbone: per-patch colour, texture and position descriptors.

Each patch is described by its mean CIELAB colour, the standard deviation of its lightness (a crude
texture cue) and its centre position. These few numbers are lifted to ``D`` dimensions with random
Fourier features (Rahimi & Recht 2007) of a Gaussian kernel, so that the dot product DeepCut uses as
its graph affinity approximates a *bilateral* kernel::

    <f_i, f_j> / D  ≈  exp(-|lab_i - lab_j|² / 2σ_c² - |t_i - t_j|² / 2σ_t² - |p_i - p_j|² / 2σ_p²)

Patches of similar colour that are close together are strongly connected, which is what a
normalized cut on colour needs. No weights, no download; deterministic (fixed projection seed).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .base import Backbone, TokenState


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] → CIELAB (D65), ``L`` in [0, 100]."""
    c = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = torch.tensor([[0.412453, 0.357580, 0.180423],
                      [0.212671, 0.715160, 0.072169],
                      [0.019334, 0.119193, 0.950227]], dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,bjhw->bihw", m, c)
    xyz = xyz / torch.tensor([0.950456, 1.0, 1.088754], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    L = 116 * f[:, 1] - 16
    a = 500 * (f[:, 0] - f[:, 1])
    b = 200 * (f[:, 1] - f[:, 2])
    return torch.stack([L, a, b], dim=1)


class ColorBackbone(Backbone):
    """Colour/position random-Fourier-feature descriptors on a grid of ``patch_size`` patches.

    Args:
        patch_size: patch side in pixels (8, like DINO ViT-S/8, so grids match).
        dim: output feature dimension ``D``.
        sigma_color: kernel width in CIELAB units (ΔE ≈ 12 is a clearly different colour).
        sigma_texture: kernel width of the lightness standard deviation.
        sigma_position: kernel width of the position, as a fraction of the image's longer side.
    """

    family = "color"

    def __init__(self, patch_size: int = 8, dim: int = 384, sigma_color: float = 12.0,
                 sigma_texture: float = 10.0, sigma_position: float = 0.6, seed: int = 0) -> None:
        self.name = "color"
        self.source = "none (weight-free)"
        self.patch_size = patch_size
        self.dim = dim
        self.depth = 1
        self.scales = torch.tensor([sigma_color, sigma_color, sigma_color, sigma_texture,
                                    sigma_position, sigma_position], dtype=torch.float32)
        g = torch.Generator().manual_seed(seed)
        self.omega = torch.randn(6, dim, generator=g)
        self.phase = torch.rand(dim, generator=g) * (2 * np.pi)

    def to(self, device: str | torch.device) -> ColorBackbone:
        """Move the projection (``omega``, ``phase``) and the kernel widths to ``device``; returns ``self``."""
        self.scales = self.scales.to(device)
        self.omega = self.omega.to(device)
        self.phase = self.phase.to(device)
        return super().to(self.omega.device)

    def describe_patches(self, pixels: np.ndarray | torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
        """Raw descriptors ``(B, h*w, 6)`` on :attr:`device`: mean L, a, b, std of L, centre y, centre x."""
        lab = rgb_to_lab(self.pixels_to_tensor(pixels))
        p = self.patch_size
        mean = F.avg_pool2d(lab, p, stride)
        sq = F.avg_pool2d(lab[:, :1] ** 2, p, stride)
        std_l = (sq - mean[:, :1] ** 2).clamp_min(0).sqrt()
        b, _, h, w = mean.shape
        longer = float(max(pixels.shape[1], pixels.shape[2]))
        ys = (torch.arange(h, dtype=torch.float32, device=lab.device) * stride + p / 2) / longer
        xs = (torch.arange(w, dtype=torch.float32, device=lab.device) * stride + p / 2) / longer
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        pos = torch.stack([yy, xx]).expand(b, 2, h, w)
        desc = torch.cat([mean, std_l, pos], dim=1)  # (B, 6, h, w)
        return desc.flatten(2).transpose(1, 2), (h, w)

    @torch.inference_mode()
    def embed(self, pixels: np.ndarray, stride: int) -> TokenState:
        stride = self.check_stride(stride)
        desc, grid = self.describe_patches(pixels, stride)
        z = (desc / self.scales) @ self.omega + self.phase
        # sqrt(2) cos(.) has unit variance per dimension, like typical ViT features, which keeps the
        # GNN's input in its usual range; the affinity is scale-free (normalised by its maximum).
        feats = torch.cos(z) * float(np.sqrt(2.0))
        return TokenState(grid=grid, prefix=0, extra={"features": feats.contiguous()})

    def check_layer_facet(self, layer: int, facet: str) -> int:
        # A single layer whose facets are all the same descriptor: any layer/facet is accepted so
        # that settings chosen for a ViT (layer=11, facet="key") work unchanged.
        super().check_layer_facet(0, facet)
        return 0

    def facet(self, state: TokenState, layer: int, facet: str) -> torch.Tensor:
        self.check_layer_facet(layer, facet)
        return state.extra["features"]
