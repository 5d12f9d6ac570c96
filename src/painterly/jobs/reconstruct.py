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
    panels: list[dict] = []  # filled by make, read when the record is written

    def make(callback, cancel, preview_every):
        result = reconstruct(photo, painting, cfg, callback, cancel, preview_every)
        panels.extend(result.records)
        return result.picture

    return figure.publish(job, output, options, make,
                          inputs={"content": job.inputs[0], "style": job.inputs[1]},
                          panels=panels)
