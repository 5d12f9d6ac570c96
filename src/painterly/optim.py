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


def make_optimizer(name: str, params: list[torch.Tensor], lr: float | None):
    """L-BFGS (as in Gatys et al.) or Adam. L-BFGS is made afresh for every scale."""
    if name == "lbfgs":
        return LBFGS(params[0], lr=lr or 1.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr or 0.02)
    raise ConfigError(f"unknown optimizer {name!r}", f"use one of {', '.join(OPTIMIZERS)}")


class LBFGS:
    """L-BFGS over one tensor, one iteration per ``step`` so the loop can report, cancel and
    guard each one, with a fixed step of ``lr`` and no line search: what torch.optim.LBFGS
    computes with ``max_iter=1`` (Nocedal & Wright, *Numerical Optimization*, Algorithm 7.4,
    the two-loop recursion; pairs with y·s ≤ 1e-10 are skipped), except for the first step,
    which is FIRST_STEP_RMS.

    Departure from torch's optimiser, for time: torch imports its compiler (torch._dynamo)
    when any of its optimisers is made: 1.6 s of every ``painterly style`` run on 2 cores
    (``import torch._dynamo`` timed after ``import torch``), the time of three evaluations at
    256 px. The state keeps torch's names and layout, so checkpoints written by earlier
    versions (through torch's optimiser) resume here.
    """

    def __init__(self, x: torch.Tensor, lr: float = 1.0, history: int = LBFGS_HISTORY):
        self.x, self.lr, self.history = x, lr, history
        self.state: dict = {"n_iter": 0}

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.x.grad is not None:
            if set_to_none:
                self.x.grad = None
            else:
                self.x.grad.zero_()

    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        with torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            self._iterate(self._flat_grad(), float(loss))
        return loss

    def _flat_grad(self) -> torch.Tensor:
        grad = self.x.grad
        return self.x.new_zeros(self.x.numel()) if grad is None else grad.reshape(-1).clone()

    def _iterate(self, g: torch.Tensor, loss: float) -> None:
        state = self.state
        if not bool(g.abs().max() > 0):
            return  # a stationary point: nothing to do, as torch with tolerance_grad 0
        state["n_iter"] += 1
        if state["n_iter"] == 1:
            d = g.neg()
            state.update(old_dirs=[], old_stps=[], ro=[], H_diag=1.0)
        else:
            self._remember(g - state["prev_flat_grad"], state["d"].mul(state["t"]))
            d = self._two_loop(g)
        state.update(d=d, prev_flat_grad=g, prev_loss=loss)
        state["t"] = self._first_step(g) if state["n_iter"] == 1 else self.lr
        if float(g.dot(d)) > 0:
            return  # not a descent direction (rounding, or a changed loss): no step
        self.x.add_(d.view_as(self.x), alpha=float(state["t"]))

    def _remember(self, y: torch.Tensor, s: torch.Tensor) -> None:
        """Keep the newest ``history`` pairs of gradient change y and step s with y·s > 0
        (the curvature condition; a pair without it would spoil the inverse Hessian)."""
        state = self.state
        ys = y.dot(s)
        if ys > 1e-10:
            for name, value in (("old_dirs", y), ("old_stps", s), ("ro", 1.0 / ys)):
                state[name] = (state[name] + [value])[-self.history:]
            state["H_diag"] = ys / y.dot(y)

    def _two_loop(self, g: torch.Tensor) -> torch.Tensor:
        """−H·g for the L-BFGS inverse Hessian H of the remembered pairs."""
        ys, ss, ro = self.state["old_dirs"], self.state["old_stps"], self.state["ro"]
        q = g.neg()
        alphas = []
        for y, s, r in zip(reversed(ys), reversed(ss), reversed(ro)):
            alphas.append(s.dot(q) * r)
            q.add_(y, alpha=-alphas[-1])
        d = q.mul(self.state["H_diag"])
        for y, s, r, a in zip(ys, ss, ro, reversed(alphas)):
            d.add_(s, alpha=a - y.dot(d) * r)
        return d

    def _first_step(self, g: torch.Tensor) -> float:
        """The step length that moves the pixels by FIRST_STEP_RMS (times lr) along −g;
        torch's min(1, 1/‖g‖₁) · lr where that is not a finite number."""
        rms, l1 = float(g.pow(2).mean().sqrt()), float(g.abs().sum())
        if rms > 0 and math.isfinite(rms):
            return self.lr * FIRST_STEP_RMS / rms
        return min(1.0, 1.0 / l1) * self.lr if l1 > 0 and math.isfinite(l1) else self.lr

    def state_dict(self) -> dict:
        """torch.optim.LBFGS's layout: the state under the first (only) parameter."""
        return {"state": {0: dict(self.state)},
                "param_groups": [{"lr": self.lr, "history_size": self.history, "params": [0]}]}

    def load_state_dict(self, saved: dict) -> None:
        self.state = {"n_iter": 0, **saved.get("state", {}).get(0, {})}


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
