"""The features job: feature visualisation of a layer's units as one labelled grid picture."""
from __future__ import annotations

from pathlib import Path

from ..inspect.features import FeaturesConfig, visualize
from . import figure
from .job import Job, Outcome, RunOptions


def check(job: Job, output: Path) -> None:
    figure.check(job, output)


def run(job: Job, output: Path, options: RunOptions, checked=None) -> Outcome:
    cfg: FeaturesConfig = job.config

    def make(callback, cancel, preview_every):
        result = visualize(cfg, callback=callback, cancel=cancel, preview_every=preview_every)
        return result.picture, {"units": result.units}

    return figure.publish(job, output, options, make, inputs={})
