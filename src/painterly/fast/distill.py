"""A slim encoder for ``painterly fast``, distilled from VGG16's relu4_1.

Departure from AdaIN, for speed: on a 2-core CPU, VGG16 up to relu4_1 is two thirds of a
one-off fast stylisation (the photo and the painting each pass through it). Following Wang et
al. 2020 (*Collaborative Distillation for Ultra-Resolution Universal Style Transfer*), a
student with half VGG16's channels in blocks 1–3 (``vgg16-slim``: a quarter of the
multiply-adds) learns to give the same relu4_1 features:

    loss = ‖s(x) − f(x)‖² / ‖f(x)‖²      on random crops of photographs and paintings

The decoder trained on VGG16 then works unchanged on the student's features. The student
starts as VGG16 pruned to its most active channels (mean squared activation on the corpus),
so it begins close to the teacher; distillation recovers what the dropped channels carried.
Unlike Wang et al., the decoder is not retrained with the student: the student is trained to
fit the decoder painterly already has.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ..corpus import random_crops
from ..errors import check_option
from ..features import FeatureExtractor, NetSpec, build_extractor
from ..losses import relative_error
from ..nets import get_net, layer_names, vgg_features
from ..progress import Callback
from ..training import Trainable, run_training
from .models import ENCODER_LAYER, SLIM_ARCH, features_name, load_decoder, slim_metadata
from .ops import style_statistics, target_features
from .stylizer import FastConfig

ENCODER = "encoder.safetensors"


@dataclass(frozen=True)
class DistillConfig:
    """Every setting of an encoder distillation run, with its default."""

    photos: str = ""                    # a tar of JPEG photographs (or a folder of pictures)
    paintings: str = ""                 # a tar of JPEG paintings (or a folder)
    out: str = "slim-encoder"           # folder for checkpoint, encoder, preview and log
    steps: int = 8000
    batch: int = 8                      # half photographs, half paintings
    crop: int = 160
    lr: float = 5e-4
    lr_decay: float = 5e-4              # lr / (1 + decay · step)
    checkpoint_minutes: float = 5.0
    minutes: float = 0.0                # stop, with a checkpoint, after this long; 0 = no limit
    preview_every: int = 250
    seed: int = 0
    model: str = "vgg16"                # the teacher; "tiny" for tests
    weights: Optional[str] = None       # the teacher's weights
    decoder: Optional[str] = None       # decoder for the preview; None = painterly's own
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0

    def __post_init__(self):
        for name in ("steps", "batch"):
            check_option(getattr(self, name) >= 1, name, getattr(self, name), "an integer ≥ 1")
        check_option(self.batch % 2 == 0, "batch", self.batch, "an even number")
        check_option(self.crop >= 32 and self.crop % 8 == 0, "crop", self.crop,
                     "a multiple of 8, ≥ 32")
        check_option(self.lr > 0, "lr", self.lr, "a number > 0")
        check_option(self.checkpoint_minutes > 0, "checkpoint_minutes",
                     self.checkpoint_minutes, "a number > 0")
        check_option(self.minutes >= 0, "minutes", self.minutes, "a number ≥ 0 (0 = no limit)")
        check_option(self.model in ("vgg16", "tiny"), "model", self.model, "vgg16 (or tiny)")


def prune(teacher: nn.Sequential, student: nn.Sequential,
          energy: dict[int, torch.Tensor]) -> None:
    """Copy into ``student`` the teacher's weights of its most active channels.

    ``energy[i]``: mean squared activation per channel of the teacher's conv ``i``. Each
    student conv keeps the teacher's filters of the channels with most energy (all of them
    for the last, relu4_1), restricted to the channels the previous layer kept."""
    kept = torch.arange(3)
    for i, (t, s) in enumerate(zip(teacher, student)):
        if not isinstance(t, nn.Conv2d):
            continue
        order = energy[i].argsort(descending=True)[: s.out_channels].sort().values
        s.weight.data.copy_(t.weight.data[order][:, kept])
        s.bias.data.copy_(t.bias.data[order])
        kept = order


class Distiller(Trainable):
    """Teacher, student, optimiser and data; ``step()`` runs one batch."""

    OUTPUT = ENCODER
    WHAT = "encoder"
    STATE = "student"
    LOSS = ENCODER_LAYER

    def __init__(self, cfg: DistillConfig, photos: list[torch.Tensor],
                 paintings: list[torch.Tensor]):
        super().__init__(cfg, photos, paintings)
        teacher = get_net(cfg.model)
        names = layer_names(teacher.arch)
        relus = tuple(n for n in names[: names.index(ENCODER_LAYER) + 1] if n.startswith("relu"))
        self.teacher = build_extractor(NetSpec(cfg.model, cfg.weights), relus, self.device,
                                       cfg.precision)
        self.width = teacher.width  # the student is as much narrower as its teacher
        net = vgg_features(SLIM_ARCH, width=self.width).to(self.device,
                                                            memory_format=torch.channels_last)
        self.student = FeatureExtractor(net, SLIM_ARCH, self.teacher.convention, (ENCODER_LAYER,),
                                        self.teacher.precision)
        prune(self.teacher.net, self.student.net, self._energy())
        self.student.net.requires_grad_(True)
        self.optimise(self.student.net.parameters())
        self.decoder = None  # loaded for the first preview

    @property
    def trained(self) -> nn.Module:
        return self.student.net

    @torch.no_grad()
    def _energy(self, n: int = 32) -> dict[int, torch.Tensor]:
        gen = torch.Generator().manual_seed(self.cfg.seed + 7)
        x = torch.cat([random_crops(self.photos, n // 2, self.cfg.crop, gen),
                       random_crops(self.paintings, n // 2, self.cfg.crop, gen)]).to(self.device)
        features = self.teacher(x)
        # conv i feeds relu i + 1: the energy of conv i's channels is that of its ReLU.
        return {self.teacher.index_of[name] - 1: f.pow(2).mean((0, 2, 3)).cpu()
                for name, f in features.items()}

    def batch(self, step: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        half = self.cfg.batch // 2
        x = torch.cat([random_crops(self.photos, half, self.cfg.crop, gen),
                       random_crops(self.paintings, half, self.cfg.crop, gen)])
        return x.to(self.device, memory_format=torch.channels_last)

    def losses(self, step: int) -> dict[str, torch.Tensor]:
        x = self.batch(step)
        with torch.no_grad():
            target = self.teacher(x)[ENCODER_LAYER]
        return {ENCODER_LAYER: relative_error(self.student(x)[ENCODER_LAYER], target)}

    def preview_columns(self, c: torch.Tensor, s: torch.Tensor) -> list[torch.Tensor]:
        """The pair painted with the teacher's features, then with the student's."""
        self.student.eval()
        if self.decoder is None:
            self.decoder = load_decoder(self.cfg.decoder)[0].to(self.device)
        columns = []
        for encoder in (self.teacher, self.student):
            f_c, f_s = encoder(c)[ENCODER_LAYER], encoder(s)[ENCODER_LAYER]
            target = target_features(f_c, style_statistics(f_s), FastConfig.whiten)
            columns.append(self.decoder(target).float().clamp(0, 1))
        return columns

    def metadata(self, last: dict[str, float]) -> dict[str, str]:
        cfg = self.cfg
        return slim_metadata(
            self.width, self.teacher.convention, features_name(cfg.model),
            steps=self.done, batch=cfg.batch, crop=cfg.crop,
            losses=json.dumps({k: round(v, 4) for k, v in last.items()}),
            photos=Path(cfg.photos).name, paintings=Path(cfg.paintings).name)


def distill(cfg: DistillConfig, resume: bool = False, callback: Optional[Callback] = None,
            cancel=None, log: Callable[[str], None] = lambda s: None) -> Path:
    """Distil (or continue distilling) the slim encoder; returns the exported file's path."""
    return run_training(Distiller, cfg, resume, callback, cancel, log)
