"""The one training loop of painterly's own networks (the fast decoder, the slim encoder).

A :class:`Trainable` holds a network, its optimiser and the corpora, and runs one batch per
``step()``; :func:`run_training` loads the corpora, builds one and steps it to the end with
resumable checkpoints, previews, a loss log, progress events and a clean stop on ``cancel``
or after ``cfg.minutes``. The recipes (what a step computes) live with their algorithms.

The run config is any dataclass with the fields this module reads: photos, paintings, out,
steps, crop, lr, lr_decay, checkpoint_minutes, minutes, preview_every, seed, device, threads.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from .corpus import load_pictures, min_side, random_crops
from .device import pick_device
from .errors import Cancelled, ConfigError
from .files import atomic_write
from .image import resize, save_image
from .progress import Callback, Progress
from .weights import read_checkpoint, write_model

CHECKPOINT = "checkpoint.pt"
PREVIEW = "preview.png"
LOG = "losses.jsonl"
PREVIEW_SEED = 12345  # the preview shows the same pairs all along a run


class Trainable:
    """What every training run shares: the seed, the device, the corpora, Adam with the
    schedule lr / (1 + lr_decay · step), resumable state, the fp16 export and the preview.

    A subclass builds its nets in ``__init__`` (after ``super().__init__``), calls
    ``self.optimise(parameters)``, and says what a step computes (``losses``), which network
    is trained (``trained``) and exported (``result``, ``metadata``) and what the preview
    shows (``preview_columns``).
    """

    OUTPUT = "network.safetensors"  # the exported file's name in the run's folder
    WHAT = "network"                # how progress names it
    STATE = "network"               # the trained network's key in the checkpoint
    LOSS = "total"                  # the entry of ``losses`` that is minimised
    CLIP_NORM: Optional[float] = None  # gradient norm clipping; None = none

    def __init__(self, cfg, photos: list[torch.Tensor], paintings: list[torch.Tensor]):
        torch.manual_seed(cfg.seed)
        self.cfg, self.photos, self.paintings = cfg, photos, paintings
        self.device = pick_device(cfg.device)
        self.done = 0

    def optimise(self, parameters) -> None:
        """Adam on ``parameters`` with the AdaIN code's schedule lr / (1 + decay · step)."""
        decay = self.cfg.lr_decay
        self.optimizer = torch.optim.Adam(parameters, lr=self.cfg.lr)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 1.0 / (1.0 + decay * step))

    # -- what a subclass says

    @property
    def trained(self) -> nn.Module:
        """The network the optimiser changes."""
        raise NotImplementedError

    @property
    def result(self) -> nn.Module:
        """The network that is previewed and exported (default: the trained one)."""
        return self.trained

    def losses(self, step: int) -> dict[str, torch.Tensor]:
        """The losses of batch ``step``; ``LOSS`` names the one minimised."""
        raise NotImplementedError

    def metadata(self, last: dict[str, float]) -> dict[str, str]:
        """The exported file's metadata (its format and recipe); ``last``: the last losses."""
        raise NotImplementedError

    def preview_columns(self, photos: torch.Tensor, paintings: torch.Tensor
                        ) -> list[torch.Tensor]:
        """The columns after photo | painting, for the preview's fixed pairs."""
        raise NotImplementedError

    def after_update(self) -> None:
        """Called after each optimiser step (e.g. to update a running average)."""

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # -- the shared part

    def step(self) -> dict[str, float]:
        """One batch: losses, backward pass, clipping, update, schedule."""
        self.trained.train()
        losses = self.losses(self.done)
        self.optimizer.zero_grad(set_to_none=True)
        losses[self.LOSS].backward()
        if self.CLIP_NORM is not None:
            torch.nn.utils.clip_grad_norm_(self.trained.parameters(), self.CLIP_NORM)
        self.optimizer.step()
        self.schedule.step()
        self.after_update()
        self.done += 1
        return {k: float(v.detach()) for k, v in losses.items()}

    def state(self) -> dict:
        return {self.STATE: self.trained.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "step": self.done,
                "config": json.dumps(asdict(self.cfg)), **self.extra_state()}

    def load_state(self, state: dict) -> None:
        self.trained.load_state_dict(state[self.STATE])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.done = int(state["step"])
        self.load_extra_state(state)

    def export(self, path: Path, last: dict[str, float]) -> None:
        """Write the result in fp16 with its recipe as metadata, atomically."""
        write_model(path, self.result.state_dict(), self.metadata(last))

    @torch.no_grad()
    def preview(self, n: int = 4) -> torch.Tensor:
        """Rows of photo | painting | ``preview_columns`` for fixed pairs, as one picture."""
        gen = torch.Generator().manual_seed(PREVIEW_SEED)
        size = max(self.cfg.crop, 192)
        c = random_crops(self.photos, n, min(size, min_side(self.photos)), gen)
        s = random_crops(self.paintings, n, min(size, min_side(self.paintings)), gen)
        c = resize(c, size=(size, size)).to(self.device)
        s = resize(s, size=(size, size)).to(self.device)
        columns = [c, s, *self.preview_columns(c, s)]
        rows = [torch.cat([col[i] for col in columns], dim=-1) for i in range(n)]
        return torch.cat(rows, dim=-2).unsqueeze(0).cpu()


def save_checkpoint(trainer: Trainable, out: Path, last: dict[str, float]) -> torch.Tensor:
    """Write the resumable checkpoint, the fp16 network and the preview, each atomically;
    returns the preview picture."""
    atomic_write(out / CHECKPOINT, lambda f: torch.save(trainer.state(), f))
    trainer.export(out / trainer.OUTPUT, last)
    return _write_preview(trainer, out)


def _write_preview(trainer: Trainable, out: Path) -> torch.Tensor:
    picture = trainer.preview()
    save_image(picture, out / PREVIEW)
    return picture


def run_training(make: type[Trainable], cfg, resume: bool = False,
                 callback: Optional[Callback] = None, cancel=None,
                 log: Callable[[str], None] = lambda s: None) -> Path:
    """Load the corpora, build ``make(cfg, photos, paintings)`` and run it (run_loop);
    returns the path of the exported network."""
    out = prepare_run(cfg, resume)
    log("decoding training pictures…")
    photos = load_pictures(cfg.photos, cfg.crop)
    paintings = load_pictures(cfg.paintings, cfg.crop)
    log(f"{len(photos)} photographs, {len(paintings)} paintings")
    return run_loop(make(cfg, photos, paintings), cfg, out, resume, callback, cancel, log)


def prepare_run(cfg, resume: bool) -> Path:
    """Set the threads and make the output folder; refuse to overwrite a checkpoint."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif cfg.device != "cpu" and torch.cuda.is_available():
        # On a GPU the CPU only cuts crops. torch's default (a thread per core) made two or
        # three runs sharing a 16-core GPU machine 30× slower (1 step/s instead of 30).
        torch.set_num_threads(2)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / CHECKPOINT).exists() and not resume:
        raise ConfigError(f"{out / CHECKPOINT} exists",
                          "pass `resume` to continue it, or choose another `out`")
    return out


def run_loop(trainer: Trainable, cfg, out: Path, resume: bool = False,
             callback: Optional[Callback] = None, cancel=None,
             log: Callable[[str], None] = lambda s: None) -> Path:
    """Step ``trainer`` to ``cfg.steps`` with checkpoints, previews, a loss log and progress;
    stops cleanly (checkpoint saved) on ``cancel`` or after ``cfg.minutes``. The progress
    event of a step that wrote a preview carries the picture (``Progress.image``)."""
    checkpoint = out / CHECKPOINT
    if resume and checkpoint.exists():
        trainer.load_state(read_checkpoint(checkpoint, trainer.device))
        log(f"resumed at step {trainer.done}")
    last: dict[str, float] = {}
    started = saved = time.perf_counter()
    deadline = started + cfg.minutes * 60 if cfg.minutes else float("inf")
    what = trainer.WHAT
    if trainer.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest kernels once
    with open(out / LOG, "a") as log_file:
        while trainer.done < cfg.steps:
            last = trainer.step()
            if trainer.done % 50 == 0 or trainer.done == cfg.steps:
                log_file.write(json.dumps({"step": trainer.done, **last,
                                           "seconds": round(time.perf_counter() - started, 1)}) + "\n")
                log_file.flush()
            now = time.perf_counter()
            cancelled = cancel is not None and cancel.is_set()
            picture = None
            if (now - saved > cfg.checkpoint_minutes * 60 or trainer.done == cfg.steps
                    or now >= deadline or cancelled):
                picture = save_checkpoint(trainer, out, last)
                saved = time.perf_counter()
            elif cfg.preview_every and trainer.done % cfg.preview_every == 0:
                picture = _write_preview(trainer, out)
            if callback:
                callback(Progress(f"train {what}", what, trainer.done, cfg.steps, last,
                                  time.perf_counter() - started, picture))
            if cancelled:
                raise Cancelled(f"stopped at step {trainer.done}; checkpoint saved",
                                "continue with `resume`")
            if now >= deadline:
                log(f"stopped after {cfg.minutes:g} minutes at step {trainer.done}; "
                    "`resume` continues")
                break
    return out / trainer.OUTPUT
