"""The one optimisation loop shared by every algorithm.

It takes a picture to optimise, a loss closure, an optimiser factory and a step budget, and
adds what every long run needs: progress events, cancellation, and a guard that stops on
NaN/Inf with the last good picture.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .errors import Cancelled, ConfigError, DivergedError
from .progress import Callback, Progress

OPTIMIZERS = ("lbfgs", "adam")
LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def make_optimizer(name: str, params: list[torch.Tensor], lr: float | None) -> torch.optim.Optimizer:
    """L-BFGS (as in Gatys et al.) or Adam. L-BFGS is made afresh for every scale."""
    if name == "lbfgs":
        # One iteration per .step() call so the loop can report, cancel and guard each one;
        # torch keeps the curvature history in the optimiser state between calls.
        return torch.optim.LBFGS(params, lr=lr or 1.0, max_iter=1, history_size=20,
                                 tolerance_grad=0.0, tolerance_change=0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr or 0.02)
    raise ConfigError(f"unknown optimizer {name!r}", f"use one of {', '.join(OPTIMIZERS)}")


@dataclass
class Run:
    """Shared state of a multi-stage run: progress counter, clock, callback, cancel flag."""

    task: str
    total: int
    callback: Optional[Callback] = None
    cancel: Optional[threading.Event] = None
    preview_every: int = 0
    step: int = 0
    started: float = 0.0

    def __post_init__(self):
        self.started = time.perf_counter()

    def report(self, stage: str, losses: dict[str, float], image: torch.Tensor) -> None:
        self.step += 1
        if self.callback is None:
            return
        want_image = self.preview_every and (self.step % self.preview_every == 0
                                             or self.step == self.total)
        self.callback(Progress(self.task, stage, self.step, self.total, losses,
                               time.perf_counter() - self.started,
                               image.detach().clone() if want_image else None))

    def check_cancel(self, image: torch.Tensor) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("cancelled", partial=image.detach().clone())


def optimize(image: torch.Tensor, loss_fn: LossFn, steps: int, run: Run, stage: str,
             optimizer: str = "lbfgs", lr: float | None = None) -> torch.Tensor:
    """Minimise ``loss_fn`` over the pixels of ``image`` for ``steps`` iterations.

    Returns the optimised picture clamped to [0, 1]. Raises :class:`DivergedError` with the
    last finite picture on NaN/Inf, and :class:`Cancelled` with the current one on cancel.
    """
    x = image.detach().clone().requires_grad_(True)
    opt = make_optimizer(optimizer, [x], lr)
    last_good = x.detach().clone()
    state: dict = {}

    def closure():
        opt.zero_grad(set_to_none=False)
        loss, parts = loss_fn(x)
        loss.backward()
        state["loss"], state["parts"] = loss.item(), parts
        return loss

    for _ in range(steps):
        run.check_cancel(last_good)
        opt.step(closure)
        if not math.isfinite(state["loss"]) or not torch.isfinite(x).all():
            raise DivergedError(f"optimisation diverged at step {run.step + 1} "
                                f"(loss={state['loss']})",
                                "try --optimizer adam or lower --lr / --style-weight",
                                last_good=last_good)
        with torch.no_grad():
            x.clamp_(0, 1)  # keep pixels valid (projected optimisation)
        last_good = x.detach().clone()
        run.report(stage, {"total": state["loss"], **state["parts"]}, last_good)
    return last_good
