"""Loss functions of Gatys et al., as pure functions on feature tensors.

Every loss is normalised so that its size does not depend on the picture's size or the
layer's width: features are averaged over positions, Gram matrices are divided by the
number of positions, and content and style errors are taken relative to their targets.
This departs from the paper's raw sums (whose weights only work at one size) so that the
default weights work at every scale of the coarse-to-fine schedule.
"""
from __future__ import annotations

import torch


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """G = F Fᵀ / (H·W) for features [B, C, H, W] -> [B, C, C]."""
    b, c, h, w = features.shape
    # Features come channels-last (faster convolutions on CPU): viewing them as
    # [B, H·W, C] needs no copy, and Fᵀ·F then runs as one well-shaped matmul.
    flat = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
    return _Gram.apply(flat) / (h * w)


class _Gram(torch.autograd.Function):
    """Fᵀ·F with a one-matmul backward: d/dF = F·(dG + dGᵀ).

    Autograd would differentiate both factors separately (two matmuls and a sum over the
    largest tensor); on a CPU at 512 px this halves the time spent on Gram matrices.
    """

    @staticmethod
    def forward(ctx, flat: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat)
        return flat.transpose(1, 2) @ flat

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (flat,) = ctx.saved_tensors
        return flat @ (grad + grad.transpose(1, 2))


def relative_error(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖x − t‖² / ‖t‖² over the whole batch: the squared error relative to the target's energy.

    The training losses of painterly's own networks take every term so, so that their
    weights need no retuning for VGG's Caffe scale."""
    return (x - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-8)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖F − P‖² / ‖P‖²: squared feature error relative to the target's energy."""
    return relative_error(features, target)


def style_loss(gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """‖G − A‖² / ‖A‖² for one layer: squared Gram error relative to the target Gram."""
    return (gram - target_gram).pow(2).sum() / target_gram.pow(2).sum().clamp_min(1e-8)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of neighbouring pixels (0 for a flat picture).

    The squared form (as in Mahendran & Vedaldi, β=2) is smooth, which suits L-BFGS.
    """
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean() + dy.pow(2).mean()


def style_distance(gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """‖G − A‖ / ‖A‖ (not squared): the quality measure used in benchmarks and tests."""
    return style_loss(gram, target_gram).sqrt()


def content_distance(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖F − P‖ / ‖P‖ (not squared)."""
    return content_loss(features, target).sqrt()
