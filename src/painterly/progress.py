"""Progress events sent by every long computation to an optional callback."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch


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
