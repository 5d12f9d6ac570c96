"""Operations on pictures that ascent loops share: rolls, tiles, tiled gradients, blur, zoom.

Gradients are computed tile by tile on a randomly rolled picture (the TensorFlow DeepDream
tutorial's method), so that large pictures fit in memory and no seam stays in place.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

Objective = Callable[[torch.Tensor], torch.Tensor]


def roll(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    return torch.roll(x, shifts=shift, dims=(-2, -1))


def unroll(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    return torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(-2, -1))


def random_shift(shape: torch.Size, tile_size: int, gen: torch.Generator) -> tuple[int, int]:
    """A roll over a whole tile period, so tile borders land anywhere from step to step."""
    h, w = shape[-2:]
    dy = int(torch.randint(min(h, tile_size), (1,), generator=gen))
    dx = int(torch.randint(min(w, tile_size), (1,), generator=gen))
    return dy, dx


def tile_slices(length: int, tile_size: int) -> list[slice]:
    """Cover ``length`` with ⌈length/tile_size⌉ tiles of near-equal size.

    Departure from the TF tutorial, which skips the last partial tile: here every pixel gets
    its gradient at every step, and no tile is a thin sliver with little context.
    """
    n = math.ceil(length / tile_size)
    bounds = [round(i * length / n) for i in range(n + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def tiled_gradient(x: torch.Tensor, objective: Objective,
                   tile_size: int) -> tuple[torch.Tensor, float]:
    """Gradient of the objective over the picture, one tile at a time (bounded memory)."""
    grad = torch.zeros_like(x)
    total = 0.0
    for ys in tile_slices(x.shape[-2], tile_size):
        for xs in tile_slices(x.shape[-1], tile_size):
            tile = x[..., ys, xs].detach().requires_grad_(True)
            value = objective(tile)
            grad[..., ys, xs] = torch.autograd.grad(value, tile)[0]
            total += value.item()
    return grad, total


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel (reflected borders); σ = 0 returns ``x``.

    Departure from the notebook: VGG's gradients carry a fine lattice of lines (its strided
    pooling), most visible on flat sky; blurring the gradient a little softens that grid
    while the picture itself stays sharp.
    """
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(x.shape[1], 1, 1, 1)  # [C, 1, 1, k]
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel, groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"),
                    kernel.transpose(-1, -2), groups=c)


def zoom_rotate(x: torch.Tensor, zoom: float, degrees: float) -> torch.Tensor:
    """Zoom into the centre by ``zoom`` and turn by ``degrees`` (counter-clockwise)."""
    h, w = x.shape[-2:]
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    # affine_grid works in [-1, 1] per axis; the h/w factors keep rotations true on
    # non-square pictures.
    theta = torch.tensor([[c / zoom, -s * h / (w * zoom), 0.0],
                          [s * w / (h * zoom), c / zoom, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta[None], list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.clamp(0, 1)
