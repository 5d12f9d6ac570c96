"""The one optimisation loop shared by every algorithm.

It takes a picture to optimise, a loss closure, an optimiser factory and a step budget, and
adds what every long run needs: progress events, cancellation (with the state needed to
resume), a guard that stops on NaN/Inf with the last good picture, a warning when the loss
jumps, and a check that the work fits in memory before it starts.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .errors import Cancelled, ConfigError, DivergedError, ImageTooLargeError
from .progress import Callback, Progress

try:
    import resource
except ImportError:  # not on Windows
    resource = None

log = logging.getLogger(__name__)

OPTIMIZERS = ("lbfgs", "adam")
LBFGS_HISTORY = 20
# A loss that grows this many times in one iteration is reported (once per stage) but not
# undone: L-BFGS usually recovers, and a NaN/Inf still stops the run (DivergedError).
JUMP_WARN_FACTOR = 100.0
LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


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

    def check_cancel(self, image: torch.Tensor, state=None) -> None:
        """Raise Cancelled if asked to; ``state()`` gives what is needed to resume."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"cancelled at iteration {self.step}/{self.total}",
                            partial=image.detach().clone(),
                            state=state() if state is not None else None)


def optimize(image: torch.Tensor, loss_fn: LossFn, steps: int, run: Run, stage: str,
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
        run.check_cancel(last_good, lambda: {"iteration": i, "optimizer": opt.state_dict()})
        opt.step(closure)
        if not math.isfinite(state["loss"]) or not torch.isfinite(x).all():
            raise DivergedError(f"optimisation diverged at iteration {run.step + 1} "
                                f"(loss={state['loss']})",
                                "try --optimizer adam or lower --lr / --style-weight",
                                last_good=last_good)
        if (not warned and previous_loss is not None and previous_loss > 0
                and state["loss"] > JUMP_WARN_FACTOR * previous_loss):
            warned = True
            log.warning("loss jumped %.3g× at iteration %d (%.4g -> %.4g); the picture may "
                        "be degraded: try --optimizer adam or a lower --lr",
                        state["loss"] / previous_loss, run.step + 1, previous_loss,
                        state["loss"])
        previous_loss = state["loss"]
        with torch.no_grad():
            x.clamp_(0, 1)  # keep pixels valid (projected optimisation)
        last_good = x.detach().clone()
        run.report(stage, {"total": state["loss"], **state["parts"]}, last_good)
    return last_good


# ------------------------------------------------------------------ memory


def available_bytes() -> tuple[int, int]:
    """(memory this process may still take, its resident size now), in bytes.

    The headroom is the smaller of the system's MemAvailable (/proc/meminfo) and what the
    address-space limit (RLIMIT_AS) leaves above the current virtual size. Where neither can
    be read (not Linux), the headroom is unknown and reported as a very large number.
    """
    headroom = 1 << 62
    info = _read_kb("/proc/meminfo", ("MemAvailable:",))
    if "MemAvailable:" in info:
        headroom = info["MemAvailable:"]
    status = _read_kb("/proc/self/status", ("VmRSS:", "VmSize:"))
    if resource is None:
        return headroom, status.get("VmRSS:", 0)
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ValueError, OSError, AttributeError):
        soft = resource.RLIM_INFINITY
    if soft != resource.RLIM_INFINITY and "VmSize:" in status:
        headroom = min(headroom, max(0, soft - status["VmSize:"]))
    rss = status.get("VmRSS:")
    if rss is None:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return headroom, rss


def _read_kb(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in keys:
                    found[parts[0]] = int(parts[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return found


def check_memory(estimate: Callable[[int], int], size: int, min_size: int = 32,
                 flag: str = "--size") -> None:
    """Refuse, before any allocation, work whose estimated peak won't fit in memory.

    ``estimate(size)`` is the estimated peak resident size of the process, in bytes, at the
    long side ``size``. Raises :class:`ImageTooLargeError` naming the largest size that fits.
    Skipped when PAINTERLY_NO_MEMORY_CHECK=1.
    """
    if os.environ.get("PAINTERLY_NO_MEMORY_CHECK") == "1":
        return
    headroom, rss = available_bytes()
    limit = rss + headroom
    need = estimate(size)
    if need <= limit:
        return
    lo, hi = min_size, size  # the largest size that fits, by bisection (estimate grows with size)
    if estimate(lo) > limit:
        hint = "free some memory (nothing fits, even at the smallest size)"
    else:
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if estimate(mid) <= limit else (lo, mid - 1)
        hint = f"use {flag} ≤ {lo}"
    raise ImageTooLargeError(f"estimated peak memory {need / 2**30:.1f} GiB > available "
                             f"{limit / 2**30:.1f} GiB", hint)
