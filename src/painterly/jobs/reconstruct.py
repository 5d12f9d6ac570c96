"""The reconstruct job: Gatys et al.'s Figure 1 (content and style reconstructions from
noise) for a photo and a painting, as one labelled figure."""
from __future__ import annotations

from pathlib import Path

from ..inspect.reconstruction import ReconstructConfig, reconstruct
from . import figure
from .job import Job, Outcome, RunOptions


def check(job: Job, output: Path) -> None:
    figure.check(job, output)


def run(job: Job, output: Path, options: RunOptions, checked=None) -> Outcome:
    cfg: ReconstructConfig = job.config
    photo = job.reading.load(job.inputs[0], work_size=cfg.size)
    painting = job.reading.load(job.inputs[1], work_size=cfg.size)

    def make(callback, cancel, preview_every):
        result = reconstruct(photo, painting, cfg, callback, cancel, preview_every)
        return result.picture, {"panels": result.records}

    return figure.publish(job, output, options, make,
                          inputs={"content": job.inputs[0], "style": job.inputs[1]})
