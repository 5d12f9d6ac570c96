"""Jobs whose result is one picture made by a function of the caller's progress callback and
cancel event (the inspect views): checked, locked, rescued when cancelled, recorded, saved."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from .. import image as I
from ..errors import Cancelled, DivergedError
from ..progress import Callback
from . import provenance
from .job import Job, Outcome, RunOptions, Watcher, preview_cadence
from .outputs import OutputLock
from .style import save_rescued

# make(callback, cancel, preview_every) -> (the picture, what the record adds about it)
Make = Callable[[Callback, object, int], tuple[torch.Tensor, dict]]


def check(job: Job, output: Path) -> None:
    I.check_output_path(output, overwrite=job.overwrite, inputs=job.inputs)


def publish(job: Job, output: Path, options: RunOptions, make: Make, inputs: dict) -> Outcome:
    """Run ``make`` under the output lock and save its picture with the job's record (which
    includes what ``make`` says about the picture). When
    cancelled (or diverged), the picture so far (the exception's ``partial``) is saved beside
    the output as ``OUT-unfinished.png`` and the error says where."""
    with OutputLock(output):
        watcher = Watcher(options.callback, options.snapshot_every, output)
        try:
            picture, details = make(watcher, options.cancel,
                                    preview_cadence(options.preview_every,
                                                    options.snapshot_every))
        except (Cancelled, DivergedError) as exc:
            saved = save_rescued(exc, output)
            what = "picture so far" if isinstance(exc, Cancelled) else "last good picture"
            raise type(exc)(f"{exc.message}; {what} saved to {saved}", exc.hint) from exc
        rec = provenance.record(job.kind, inputs, output, job.config, watcher.seconds,
                                watcher.losses, **details)
        I.save_image(picture, output, metadata=provenance.png_text(rec), overwrite=job.overwrite)
    return Outcome(output, rec)
