"""What a front end asks for (a :class:`Job`) and what it gets back (an :class:`Outcome`)."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import importlib

from ..errors import InputImageError, check_option
from ..image import ReadOptions, save_image
from ..progress import Callback, Progress
from .outputs import snapshot_path

# Each kind of job: its config class (module, name), read when a job is made so that
# importing the jobs layer does not import every algorithm.
CONFIGS = {"style": ("painterly.transfer", "TransferConfig"),
           "fast": ("painterly.fast", "FastConfig"),
           "fast-sheet": ("painterly.fast", "FastConfig"),
           "dream": ("painterly.deepdream", "DreamConfig"),
           "activations": ("painterly.inspect.activations", "ActivationsConfig"),
           "top-patches": ("painterly.inspect.patches", "TopPatchesConfig"),
           "features": ("painterly.inspect.features", "FeaturesConfig"),
           "reconstruct": ("painterly.inspect.reconstruction", "ReconstructConfig")}
KINDS = tuple(CONFIGS)
# How many input pictures each kind needs at least.
LEAST_INPUTS = {"style": 2, "fast": 2, "fast-sheet": 1, "dream": 1, "activations": 1,
                "top-patches": 1,
                "features": 0, "reconstruct": 2}


def config_class(kind: str) -> type:
    module, name = CONFIGS[kind]
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Animation:
    """A DeepDream zoom: ``frames`` pictures, each a zoomed and turned copy of the last."""

    frames: int = 30
    zoom: float = 1.05                  # per frame (> 1 zooms in)
    rotate: float = 0.0                 # degrees per frame, counter-clockwise
    fps: float = 12.0
    save_frames: Optional[str] = None   # also write every frame as a PNG into this folder

    def __post_init__(self):
        check_option(self.frames >= 1, "frames", self.frames, "an integer ≥ 1")
        check_option(self.zoom > 0 and math.isfinite(self.zoom), "zoom", self.zoom,
                     "a number > 0 (> 1 zooms in)")
        check_option(math.isfinite(self.rotate), "rotate", self.rotate, "degrees per frame")
        check_option(self.fps > 0, "fps", self.fps, "a number > 0")


@dataclass(frozen=True)
class Clip:
    """How a video is painted (fast and style): the part (``start`` and ``duration`` in
    seconds; None = to the end) and the ``temporal`` consistency, 0 = frame by frame, 1 = the
    strongest (fast: the weight of the previous frame carried along the flow; style: of
    Ruder's temporal loss)."""

    start: float = 0.0
    duration: Optional[float] = None
    temporal: float = 0.7

    def __post_init__(self):
        check_option(self.start >= 0 and math.isfinite(self.start), "start", self.start,
                     "seconds ≥ 0")
        check_option(self.duration is None or (self.duration > 0 and math.isfinite(self.duration)),
                     "duration", self.duration, "seconds > 0")
        check_option(0.0 <= self.temporal <= 1.0, "temporal", self.temporal, "a number in [0, 1]")


@dataclass(frozen=True)
class Job:
    """One piece of work: a kind, its input pictures, its config and where it goes.

    ``inputs``: style and fast take (photo, painting, …) — the photo may be a folder or a
    video — dream (picture or folder,), activations (picture,), top-patches (folder or tar,),
    reconstruct (photo, painting), features none. ``output`` None: the default name (``jobs.default_output``).
    ``resume``: a style checkpoint to continue. ``animation``: dream only. ``clip``: how a
    video input is painted (fast and style; None = the defaults).
    """

    kind: str
    inputs: tuple[str, ...]
    config: Any                         # the kind's config (TransferConfig, FastConfig, …)
    output: Optional[str] = None
    overwrite: bool = False
    reading: ReadOptions = ReadOptions()
    resume: Optional[str] = None
    animation: Optional[Animation] = None
    clip: Optional[Clip] = None

    def __post_init__(self):
        check_option(self.kind in KINDS, "kind", self.kind, ", ".join(KINDS))
        expected = config_class(self.kind)
        check_option(isinstance(self.config, expected), "config", type(self.config).__name__,
                     expected.__name__)
        least = LEAST_INPUTS[self.kind]
        check_option(len(self.inputs) >= least, "inputs", self.inputs,
                     f"at least {least} input(s) for {self.kind}")
        check_option(self.resume is None or self.kind == "style", "resume", self.resume,
                     "only for style")
        check_option(self.animation is None or self.kind == "dream", "animation",
                     self.animation, "only for dream")
        check_option(self.clip is None or self.kind in ("fast", "style"), "clip", self.clip,
                     "only for fast and style")


@dataclass(frozen=True)
class ItemResult:
    """One picture of a folder job: written (``output``), not (``error``), or already there
    from an earlier run (``skipped``)."""

    source: str
    output: Optional[Path] = None
    seconds: float = 0.0
    error: Optional[str] = None
    skipped: bool = False


@dataclass
class Outcome:
    """What a job made: its output (a picture, an animation or a folder), the provenance
    record, and for folders each picture's result."""

    output: Path
    record: dict[str, Any]
    items: list[ItemResult] = field(default_factory=list)
    total: int = 0                  # pictures in the folder (0: as many as items)
    failed_to: str = "stylised"     # what a failed picture could not be

    @property
    def failures(self) -> list[ItemResult]:
        return [item for item in self.items if item.error is not None]

    def raise_for_failures(self) -> None:
        """A folder job where some pictures failed is an input error (exit 3) once the
        others are written."""
        if self.failures:
            raise InputImageError(f"{len(self.failures)} of {self.total or len(self.items)} "
                                  f"pictures could not be {self.failed_to}",
                                  "see the messages above")


class Watcher:
    """The job's own observer of the algorithm's progress, in front of the caller's: keeps
    the last losses and the time per stage for the record, writes snapshots every
    ``snapshot_every`` steps, and passes every event on."""

    def __init__(self, callback: Optional[Callback], snapshot_every: int, output: Path):
        self.callback, self.snapshot_every, self.output = callback, snapshot_every, output
        self.losses: dict[str, float] = {}
        self.stages: dict[str, dict] = {}  # per stage: iterations and seconds
        self.previous_elapsed = 0.0
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def __call__(self, event: Progress) -> None:
        self.losses = {k: round(v, 6) for k, v in event.losses.items()}
        stage = self.stages.setdefault(event.stage, {"iterations": 0, "seconds": 0.0})
        stage["iterations"] += 1
        stage["seconds"] = round(stage["seconds"] + event.elapsed - self.previous_elapsed, 3)
        self.previous_elapsed = event.elapsed
        if event.image is not None and self.snapshot_every and (
                event.step % self.snapshot_every == 0 or event.step == event.total):
            save_image(event.image, snapshot_path(self.output, event.step), overwrite=True)
        if self.callback is not None:
            self.callback(event)


def preview_cadence(preview_every: int, snapshot_every: int) -> int:
    """How often the algorithm must attach its picture so both the caller's previews and the
    snapshots get theirs."""
    return math.gcd(preview_every, snapshot_every)


@dataclass(frozen=True)
class RunOptions:
    """How the caller watches a job (not part of its recipe)."""

    callback: Optional[Callback] = None
    cancel: Optional[threading.Event] = None
    preview_every: int = 0                  # attach the picture to every n-th event
    snapshot_every: int = 0                 # write OUT.NNNN.png every n steps
    on_item: Optional[Callable[[ItemResult], None]] = None  # folders: each picture's result
    # Where a folder's pictures are painted: None = this process (batch.LocalEngine); a
    # front end may pass another with the same ``name`` and ``paint(job, todo, options)``
    # (painterly.cluster.RayEngine).
    engine: Any = None
