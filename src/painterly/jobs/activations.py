"""The activations job: a picture's feature maps (or their 3-colour summary, or the Gram
matrices) at chosen layers, as one labelled figure."""
from __future__ import annotations

from pathlib import Path

from ..inspect.activations import ActivationsConfig, activation_maps
from . import figure
from .job import Job, Outcome, RunOptions


def check(job: Job, output: Path) -> None:
    figure.check(job, output)


def run(job: Job, output: Path, options: RunOptions, checked=None) -> Outcome:
    cfg: ActivationsConfig = job.config
    picture = job.reading.load(job.inputs[0], work_size=cfg.size)

    def make(callback, cancel, preview_every):
        result = activation_maps(picture, cfg, callback, cancel, preview_every)
        return result.picture, {"layers": result.records}

    return figure.publish(job, output, options, make, inputs={"picture": job.inputs[0]})
