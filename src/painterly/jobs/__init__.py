"""Jobs: what a front end runs. The one place for the rules every front end shares.

A :class:`Job` is a kind (style, fast, dream), input pictures, a config and an output;
:func:`run_job` runs it with progress events (and preview pictures at the caller's cadence),
cancel, a checkpoint on cancel and resume (style), atomic publication under an output lock,
default output names, one provenance record (PNG text and the returned record), rescue
files when a run stops early, and folder batches where one bad picture is reported and the
rest are written. The command line is one translator of flags into jobs; a web app is another.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import importlib

from ..errors import ConfigError, PainterlyError
from ..video import is_video
from .batch import is_folder
from .job import (CONFIGS, KINDS, Animation, Clip, ItemResult, Job, Outcome, RunOptions,
                  config_class)
from .outputs import OutputLock, default_output
from .provenance import png_text, read_record, versions

__all__ = ["Animation", "CONFIGS", "Clip", "ItemResult", "Job", "KINDS", "Outcome", "OutputLock",
           "RunOptions", "check_job", "default_output", "output_of", "png_text", "read_record",
           "run_job", "versions", "warm_up"]


def output_of(job: Job) -> Path:
    """Where the job writes: its ``output``, or the default name."""
    if job.output:
        return Path(job.output)
    return default_output(job.kind, job.inputs, animation=job.animation is not None)


def _module(kind: str):
    """The module of a kind of job: ``check(job, output)`` refuses what can't be written
    before any work and returns what ``run(job, output, options, checked)`` needs."""
    return importlib.import_module(f".{kind.replace('-', '_')}", __package__)


def check_job(job: Job) -> Path:
    """Refuse, before loading anything, a job whose output can't be written; its output."""
    output = output_of(job)
    _module(job.kind).check(job, output)
    return output


def warm_up() -> None:
    """Load now what the first job would load: the algorithms' modules and the default
    network's weights (a front end that stays up calls this once at start-up)."""
    from ..features import preload
    for kind in KINDS:
        config_class(kind)
    try:
        preload()           # the default VGG16's weights, if they are here
    except PainterlyError:  # damaged or unreadable: the first job that needs them says so
        pass


def run_job(job: Job, options: Optional[RunOptions] = None) -> Outcome:
    """Run a job (see the module's docstring); raises painterly's errors, Cancelled with the
    picture so far saved (and for style a checkpoint to resume from)."""
    options = options or RunOptions()
    if options.engine is not None and not is_folder(job.inputs[0]) and not (
            job.kind == "fast" and is_video(job.inputs[0])):
        raise ConfigError(f"`engine` {options.engine.name} paints folders (and fast's videos)",
                          "give a folder, or leave `engine` local")
    output = output_of(job)
    module = _module(job.kind)
    return module.run(job, output, options, module.check(job, output))
