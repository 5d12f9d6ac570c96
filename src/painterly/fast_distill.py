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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from safetensors import safe_open
from torch import nn

from . import image as I
from . import weights as W
from .errors import WeightsError, check_option
from .fast import ENCODER_LAYER, FastConfig, load_decoder, style_statistics, transform
from .fast_train import _min_side, _relative, random_crops, run_training
from .features import FeatureExtractor, NetSpec, build_extractor
from .nets.vgg import layer_names, vgg_features
from .progress import Callback

SLIM_ARCH = "vgg16-slim"
SLIM_FILE = Path(__file__).parent / "models" / "vgg16-slim-encoder.safetensors"
SLIM_FORMAT = "painterly-slim-encoder"
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


def slim_extractor(path: str | Path | None, device: torch.device,
                   precision: str) -> tuple[FeatureExtractor, Optional[str]]:
    """The distilled encoder from its safetensors file (painterly's own by default), and
    the teacher whose relu4_1 it mimics (None for a tiny test teacher)."""
    path = Path(path) if path else SLIM_FILE
    if not path.is_file():
        raise WeightsError(f"slim encoder weights not found: {path}",
                           "reinstall painterly, or use --model vgg16")
    W.check_safetensors_header(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != SLIM_FORMAT:
        raise WeightsError(f"{path} is not a painterly slim encoder",
                           "pass a file made by `painterly distill-fast`")
    net = vgg_features(SLIM_ARCH, width=float(meta.get("width", 1.0)))
    expected = {f"features.{k}": v.shape for k, v in net.state_dict().items()}
    state = W.load_state_dict(path, expected)  # checked keys and shapes, "features." names
    net.load_state_dict({k.removeprefix("features."): v.float() for k, v in state.items()})
    net = net.to(device=device, memory_format=torch.channels_last)
    convention = meta.get("convention", W.CAFFE_BGR)  # the teacher's input convention
    if convention not in (W.CAFFE_BGR, W.TORCHVISION_RGB):
        raise WeightsError(f"{path} has an unknown input convention {convention!r}",
                           "pass a file made by `painterly distill-fast`")
    encoder = FeatureExtractor(net, SLIM_ARCH, convention, (ENCODER_LAYER,), precision)
    teacher = meta.get("teacher", "vgg16-caffe")
    return encoder.to(device), None if teacher == "tiny" else teacher


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


class Distiller:
    """Teacher, student, optimiser and data; ``step()`` runs one batch."""

    OUTPUT = ENCODER

    def __init__(self, cfg: DistillConfig, photos: list[torch.Tensor],
                 paintings: list[torch.Tensor]):
        from .transfer import pick_device

        torch.manual_seed(cfg.seed)
        self.cfg, self.photos, self.paintings = cfg, photos, paintings
        self.device = pick_device(cfg.device)
        names = layer_names("vgg16")
        relus = tuple(n for n in names[: names.index(ENCODER_LAYER) + 1] if n.startswith("relu"))
        self.teacher = build_extractor(NetSpec(cfg.model, cfg.weights), relus, self.device,
                                       cfg.precision)
        self.width = 1 / 16 if cfg.model == "tiny" else 1.0  # features._tiny_net's width
        net = vgg_features(SLIM_ARCH, width=self.width).to(self.device,
                                                            memory_format=torch.channels_last)
        self.student = FeatureExtractor(net, SLIM_ARCH, self.teacher.convention, (ENCODER_LAYER,),
                                        self.teacher.precision)
        prune(self.teacher.net, self.student.net, self._energy())
        self.student.net.requires_grad_(True)
        self.optimizer = torch.optim.Adam(self.student.net.parameters(), lr=cfg.lr)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 1.0 / (1.0 + cfg.lr_decay * step))
        self.decoder = None  # loaded for the first preview
        self.done = 0

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

    def step(self) -> dict[str, float]:
        self.student.train()
        x = self.batch(self.done)
        with torch.no_grad():
            target = self.teacher(x)[ENCODER_LAYER]
        loss = _relative(self.student(x)[ENCODER_LAYER], target)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.done += 1
        return {"relu4_1": float(loss.detach())}

    @torch.no_grad()
    def preview(self, n: int = 4) -> torch.Tensor:
        """Rows of photo | painting | with the teacher | with the student."""
        self.student.eval()
        if self.decoder is None:
            self.decoder = load_decoder(self.cfg.decoder)[0].to(self.device)
        gen = torch.Generator().manual_seed(12345)
        size = max(self.cfg.crop, 192)
        c = I.resize(random_crops(self.photos, n, min(size, _min_side(self.photos)), gen),
                     size=(size, size)).to(self.device)
        s = I.resize(random_crops(self.paintings, n, min(size, _min_side(self.paintings)), gen),
                     size=(size, size)).to(self.device)
        columns = [c, s]
        for encoder in (self.teacher, self.student):
            f_c, f_s = encoder(c)[ENCODER_LAYER], encoder(s)[ENCODER_LAYER]
            target = transform(f_c, style_statistics(f_s), FastConfig.whiten)
            columns.append(self.decoder(target).float().clamp(0, 1))
        rows = [torch.cat([col[i] for col in columns], dim=-1) for i in range(n)]
        return torch.cat(rows, dim=-2).unsqueeze(0).cpu()

    def state(self) -> dict:
        return {"student": self.student.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "step": self.done,
                "config": json.dumps(asdict(self.cfg))}

    def load_state(self, state: dict) -> None:
        self.student.net.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.done = int(state["step"])

    def export(self, path: Path, last: dict[str, float]) -> None:
        from safetensors.torch import save

        cfg = self.cfg
        state = {k: v.detach().to("cpu", torch.float16).contiguous()
                 for k, v in self.student.net.state_dict().items()}
        meta = {"format": SLIM_FORMAT, "arch": SLIM_ARCH, "width": str(self.width),
                "layer": ENCODER_LAYER, "convention": self.teacher.convention,
                "teacher": f"{cfg.model}-caffe" if cfg.model == "vgg16" else cfg.model,
                "steps": str(self.done), "batch": str(cfg.batch), "crop": str(cfg.crop),
                "losses": json.dumps({k: round(v, 4) for k, v in last.items()}),
                "photos": Path(cfg.photos).name, "paintings": Path(cfg.paintings).name}
        data = save(state, metadata=meta)
        I._atomic_write(path, lambda f: f.write(data))


def distill(cfg: DistillConfig, resume: bool = False, callback: Optional[Callback] = None,
            cancel=None, log: Callable[[str], None] = lambda s: None) -> Path:
    """Distil (or continue distilling) the slim encoder; returns the exported file's path."""
    return run_training(Distiller, cfg, "encoder", resume, callback, cancel, log)
