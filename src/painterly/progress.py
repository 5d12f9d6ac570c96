"""Progress events sent by every long computation, and the tracker that sends them.

The caller chooses what it wants to see: a ``callback`` for the events, a ``cancel`` event
checked at every step, and ``preview_every`` (attach the picture to every n-th event). The
cadence belongs to the viewer (a terminal saving snapshots, a web page showing the picture as
it forms), not to the recipe, so it is not part of any algorithm's config.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from .errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One step of work.

    ``step`` counts from 1 to ``total`` over the whole run (all scales or octaves);
    ``stage`` says where in the run it is (e.g. "scale 2/3"); ``losses`` holds named loss
    values; ``image`` is the current picture, set on the steps a preview was asked for.
    """

    task: str
    stage: str
    step: int
    total: int
    losses: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    image: Optional[torch.Tensor] = None


Callback = Callable[[Progress], None]


@dataclass
class Tracker:
    """Shared state of a multi-stage run: step counter, clock, callback, cancel flag, and the
    preview cadence the caller asked for."""

    task: str
    total: int
    callback: Optional[Callback] = None
    cancel: Optional[threading.Event] = None
    preview_every: int = 0
    step: int = 0
    started: float = 0.0

    def __post_init__(self):
        self.started = time.perf_counter()

    def wants_preview(self, step: int) -> bool:
        return bool(self.preview_every) and (step % self.preview_every == 0 or step == self.total)

    def report(self, stage: str, losses: dict[str, float], image: torch.Tensor) -> None:
        self.step += 1
        if self.callback is None:
            return
        preview = image.detach().clone() if self.wants_preview(self.step) else None
        self.callback(Progress(self.task, stage, self.step, self.total, losses,
                               time.perf_counter() - self.started, preview))

    def check_cancel(self, image: torch.Tensor, state=None) -> None:
        """Raise Cancelled if asked to; ``state()`` gives what is needed to resume."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(f"cancelled at iteration {self.step}/{self.total}",
                            partial=image.detach().clone(),
                            state=state() if state is not None else None)
