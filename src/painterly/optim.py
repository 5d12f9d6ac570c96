"""The one optimisation loop shared by every algorithm.

It takes a picture to optimise, a loss closure, an optimiser factory and a step budget, and
adds what every long run needs: progress events, cancellation (with the state needed to
resume), a guard that stops on NaN/Inf with the last good picture, and a warning when the
loss jumps. (Whether the work fits in memory is checked before, in ``memory``.)
"""
from __future__ import annotations

import copy
import logging
import math
from typing import Callable, Optional

import torch

from .errors import ConfigError, DivergedError
from .progress import Tracker

log = logging.getLogger(__name__)

OPTIMIZERS = ("lbfgs", "adam")
LBFGS_HISTORY = 20
# A loss that grows this many times in one iteration is reported (once per stage) but not
# undone: L-BFGS usually recovers, and a NaN/Inf still stops the run (DivergedError).
JUMP_WARN_FACTOR = 100.0
LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
# Departure from torch's L-BFGS (and Lua's optim, which the Gatys-style codes used): its first
# step is lr / ‖g‖₁ along −g, which over a picture's ~600,000 values moves a pixel by about a
# millionth: each scale's first iteration only probes the curvature, and the next ones crawl
# or overshoot (the quick preset's 512 px scale reported 5.15, 5.15, 5.10, 5.66, 3.77, …).
# Harmless over 1,000 iterations, it wastes a third of a 10-iteration scale. Here the first
# step moves the pixels by this much (root mean square, pixels in [0, 1]); from the second
# on, L-BFGS sizes its steps itself. Measured in docs/performance.md ("first step").
FIRST_STEP_RMS = 0.01


def make_optimizer(name: str, params: list[torch.Tensor], lr: float | None) -> torch.optim.Optimizer:
    """L-BFGS (as in Gatys et al.) or Adam. L-BFGS is made afresh for every scale."""
    if name == "lbfgs":
        # One iteration per .step() call so the loop can report, cancel and guard each one;
        # torch keeps the curvature history in the optimiser state between calls.
        return torch.optim.LBFGS(params, lr=lr or 1.0, max_iter=1, history_size=LBFGS_HISTORY,
                                 tolerance_grad=0.0, tolerance_change=0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr or 0.02)
    raise ConfigError(f"unknown optimizer {name!r}", f"use one of {', '.join(OPTIMIZERS)}")


def warm_up() -> None:
    """Make (and drop) one optimiser: torch imports its compiler (torch._dynamo) on the first
    optimiser a process makes, about 3 s on a laptop. A long-running front end calls this at
    start-up so its first job does not wait for it."""
    make_optimizer("lbfgs", [torch.zeros(1, requires_grad=True)], None)


def optimize(image: torch.Tensor, loss_fn: LossFn, steps: int, tracker: Tracker, stage: str,
             optimizer: str = "lbfgs", lr: float | None = None,
             resume: Optional[dict] = None) -> torch.Tensor:
    """Minimise ``loss_fn`` over the pixels of ``image`` for ``steps`` iterations.

    Returns the optimised picture clamped to [0, 1]. Raises :class:`DivergedError` with the
    last finite picture on NaN/Inf, and :class:`Cancelled` with the current one on cancel;
    its ``state`` ({"iteration", "optimizer"}) passed back as ``resume`` (with the picture
    as ``image``) continues exactly where the run stopped.
    """
    x = image.detach().clone().requires_grad_(True)
    opt = make_optimizer(optimizer, [x], lr)
    first = 0
    if resume is not None:
        first = int(resume["iteration"])
        # A deep copy: L-BFGS updates its state tensors in place, and the caller's
        # checkpoint must stay usable.
        opt.load_state_dict(copy.deepcopy(resume["optimizer"]))
    last_good = x.detach().clone()
    state: dict = {}
    previous_loss = None
    warned = False

    def closure():
        opt.zero_grad(set_to_none=False)
        loss, parts = loss_fn(x)
        loss.backward()
        state["loss"], state["parts"] = loss.item(), parts
        return loss

    for i in range(first, steps):
        tracker.check_cancel(last_good, lambda: {"iteration": i, "optimizer": opt.state_dict()})
        if isinstance(opt, torch.optim.LBFGS) and not opt.state[x].get("n_iter", 0):
            _sized_first_step(opt, closure, x)
        else:
            opt.step(closure)
        if not math.isfinite(state["loss"]) or not torch.isfinite(x).all():
            raise DivergedError(f"optimisation diverged at iteration {tracker.step + 1} "
                                f"(loss={state['loss']})",
                                "try `optimizer` adam or lower `lr` / `style_weight`",
                                last_good=last_good)
        if (not warned and previous_loss is not None and previous_loss > 0
                and state["loss"] > JUMP_WARN_FACTOR * previous_loss):
            warned = True
            log.warning("loss jumped %.3g× at iteration %d (%.4g -> %.4g); the picture may "
                        "be degraded: try `optimizer` adam or a lower `lr`",
                        state["loss"] / previous_loss, tracker.step + 1, previous_loss,
                        state["loss"])
        previous_loss = state["loss"]
        with torch.no_grad():
            x.clamp_(0, 1)  # keep pixels valid (projected optimisation)
        last_good = x.detach().clone()
        tracker.report(stage, {"total": state["loss"], **state["parts"]}, last_good)
    return last_good


def _sized_first_step(opt: torch.optim.LBFGS, closure: Callable, x: torch.Tensor) -> None:
    """L-BFGS's first iteration with a step of FIRST_STEP_RMS (times lr) instead of torch's
    lr / ‖g‖₁. The gradient is evaluated once, here; torch's own first evaluation of the
    step gets that loss back, with the gradient still in place."""
    loss = closure()
    lr = opt.param_groups[0]["lr"]
    g = x.grad if x.grad is not None else torch.zeros_like(x)
    rms, l1 = float(g.pow(2).mean().sqrt()), float(g.abs().sum())
    if rms > 0 and math.isfinite(rms) and math.isfinite(l1):
        # torch steps t = min(1, 1/‖g‖₁) · lr; this lr makes t · rms(g) = FIRST_STEP_RMS · lr.
        opt.param_groups[0]["lr"] = lr * FIRST_STEP_RMS / rms * max(1.0, l1)
    evaluated = [False]

    def first_evaluation():
        if evaluated[0]:
            return closure()
        evaluated[0] = True
        return loss
    try:
        opt.step(first_evaluation)
    finally:
        opt.param_groups[0]["lr"] = lr
