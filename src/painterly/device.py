"""Where and at what precision the networks run: ``pick_device``, ``resolve_precision``, ``autocast``."""
from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(name: str) -> torch.device:
    """``auto`` (CUDA, then Apple's MPS, then the CPU) or a torch device name."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"invalid `device` {name!r}", "use auto, cpu, cuda or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda is not available here", "set `device` to cpu")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 where the processor computes it natively (AVX-512 bf16, recent GPUs)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown `precision` {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cpu":
        return "bf16" if torch.cpu._is_avx512_bf16_supported() else "fp32"
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def autocast(precision: str, device: torch.device):
    """bf16 autocast for ``precision == "bf16"``, else nothing."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
