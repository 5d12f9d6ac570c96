"""Training the AdaIN decoder (Huang & Belongie 2017, section 6) on photographs and paintings.

    loss = ‖f(g(t)) − t‖² + λ Σ_l (‖μ(φ_l(g(t))) − μ(φ_l(s))‖² + ‖σ(…) − σ(…)‖²) + γ Σ_l ‖G_l − A_l‖²

with t = AdaIN(f(c), f(s)), l over relu1_1…relu4_1. Departures from the paper, each so that
it trains well in a CPU's budget: every term is relative to its target's size (painterly's
losses are; the weights then need no retuning for VGG's Caffe scale), and a Gram term (γ)
joins the paper's mean/deviation terms because the statistics alone drop the correlations
between channels that make up much of a painting's texture.

Pictures come straight from tar files of JPEGs (the corpora in ../shared/datasets), decoded
once into memory; batches are random crops with random flips.
"""
from __future__ import annotations

import io
import json
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image

from . import image as I
from .errors import ConfigError, InputImageError, check_option
from .fast import (DECODER_WIDTHS, ENCODER_LAYER, INPUT_SCALE, STATS_LAYERS, build_decoder,
                   check_widths, decoder_metadata, feature_stats, load_decoder,
                   style_statistics, transform)
from .features import NetSpec, build_extractor
from .losses import gram_matrix, style_loss
from .nets.vgg import layer_names
from .progress import Callback, Progress

CHECKPOINT = "checkpoint.pt"
DECODER = "decoder.safetensors"
PREVIEW = "preview.png"
LOG = "losses.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a decoder training run, with its default."""

    photos: str = ""                    # a tar of JPEG photographs (or a folder of pictures)
    paintings: str = ""                 # a tar of JPEG paintings (or a folder)
    out: str = "adain-training"         # folder for checkpoint, decoder, preview and log
    steps: int = 8000
    batch: int = 8
    crop: int = 128                     # random square crops, pixels
    warmup_steps: int = 300             # first learn to invert the encoder (pixel loss)
    lr: float = 5e-4
    lr_decay: float = 2e-4              # lr / (1 + decay · step), as in the AdaIN code
    style_weight: float = 1.0           # λ, on the mean/deviation terms
    gram_weight: float = 0.5            # γ
    gram_layers: tuple[str, ...] = STATS_LAYERS  # where the Gram term is taken
    gram_distance: bool = False         # Gram term: Σ_l ‖G_l − A_l‖/‖A_l‖ per picture (the
                                        # style distance) instead of Σ_l ‖G_l − A_l‖²/‖A_l‖²
    whiten: float = 0.5                 # the AdaIN/WCT blend the decoder learns to paint
    ema: float = 0.0                    # decay of a running average of the decoder's weights,
                                        # which is what gets exported; 0 = the last weights
    checkpoint_minutes: float = 5.0
    minutes: float = 0.0                # stop, with a checkpoint, after this long; 0 = no limit
    preview_every: int = 250            # steps; 0 = only at checkpoints
    seed: int = 0
    model: str = "vgg16"                # "tiny" for tests
    weights: Optional[str] = None
    decoder_scale: float = 1.0          # < 1 for a tiny test decoder
    widths: tuple[tuple[int, ...], ...] = DECODER_WIDTHS  # conv widths of the four blocks
    init: Optional[str] = None          # start from this decoder file (fine-tuning); None = fresh
    input_encoder: Optional[str] = None  # a slim encoder file (or "slim": painterly's own)
                                         # whose relu4_1 the decoder paints from; None = model's
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0                    # torch threads; 0 = torch's default (2 on a GPU)

    def __post_init__(self):
        for name in ("steps", "batch"):
            check_option(getattr(self, name) >= 1, name, getattr(self, name), "an integer ≥ 1")
        check_option(self.crop >= 32 and self.crop % 8 == 0, "crop", self.crop,
                     "a multiple of 8, ≥ 32")
        check_option(self.lr > 0, "lr", self.lr, "a number > 0")
        check_option(self.checkpoint_minutes > 0, "checkpoint_minutes",
                     self.checkpoint_minutes, "a number > 0")
        check_option(bool(self.gram_layers) and set(self.gram_layers) <= set(layer_names("vgg16")),
                     "gram_layers", ",".join(self.gram_layers), "VGG16 layer names, e.g. relu5_1")
        check_option(0 <= self.whiten <= 1, "whiten", self.whiten, "a number in [0, 1]")
        check_option(0 <= self.ema < 1, "ema", self.ema, "a number in [0, 1), e.g. 0.999")
        check_option(self.minutes >= 0, "minutes", self.minutes, "a number ≥ 0 (0 = no limit)")
        object.__setattr__(self, "widths", check_widths(self.widths))


def load_pictures(source: str, min_side: int) -> list[torch.Tensor]:
    """Decode every JPEG/PNG of a tar file or folder into uint8 [3, H, W] tensors.

    A picture whose short side is under ``min_side`` (the crop) is scaled up to it, so crops
    larger than the corpus's small pictures (≈224 px) still see every picture."""
    path = Path(source)
    if path.is_dir():
        items = ((p.name, p.read_bytes()) for p in sorted(path.iterdir())
                 if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    elif path.is_file():
        items = _tar_members(path)
    else:
        raise InputImageError(f"training pictures not found: {source}",
                              "pass a tar of JPEGs or a folder of pictures")
    pictures = []
    for name, data in items:
        try:
            with Image.open(io.BytesIO(data)) as im:
                im = im.convert("RGB")
                if min(im.size) < min_side:
                    k = min_side / min(im.size)
                    im = im.resize((max(min_side, round(im.width * k)),
                                    max(min_side, round(im.height * k))), Image.BICUBIC)
                rgb = np.asarray(im)
        except Exception:  # one bad file in a corpus of thousands is skipped, not fatal
            continue
        pictures.append(torch.from_numpy(rgb.copy()).permute(2, 0, 1))
    if not pictures:
        raise InputImageError(f"no usable pictures in {source}", "it needs JPEG or PNG pictures")
    return pictures


def _tar_members(path: Path):
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and member.name.lower().endswith((".jpg", ".jpeg", ".png")):
                    yield member.name, tar.extractfile(member).read()
    except tarfile.TarError as exc:
        raise InputImageError(f"cannot read {path}: {exc}", "pass a tar file or a folder") from exc


def random_crops(pictures: list[torch.Tensor], n: int, crop: int,
                 gen: torch.Generator) -> torch.Tensor:
    """n random crops (with random horizontal flips) as float [n, 3, crop, crop] in [0, 1]."""
    out = torch.empty(n, 3, crop, crop)
    for k, i in enumerate(torch.randint(len(pictures), (n,), generator=gen).tolist()):
        pic = pictures[i]
        h, w = pic.shape[-2:]
        y = int(torch.randint(h - crop + 1, (1,), generator=gen))
        x = int(torch.randint(w - crop + 1, (1,), generator=gen))
        patch = pic[:, y: y + crop, x: x + crop]
        if torch.rand((), generator=gen) < 0.5:
            patch = patch.flip(-1)
        out[k] = patch.float() / 255.0
    return out


class Trainer:
    """Holds the nets, the optimiser and the data; ``step()`` runs one batch."""

    OUTPUT = DECODER

    def __init__(self, cfg: TrainConfig, photos: list[torch.Tensor], paintings: list[torch.Tensor]):
        from .transfer import pick_device

        torch.manual_seed(cfg.seed)
        self.cfg, self.photos, self.paintings = cfg, photos, paintings
        self.device = pick_device(cfg.device)
        layers = tuple(dict.fromkeys(STATS_LAYERS + tuple(cfg.gram_layers)))
        self.encoder = build_extractor(NetSpec(cfg.model, cfg.weights), layers,
                                       self.device, cfg.precision)
        in_channels = self.encoder.net[self.encoder.index_of[ENCODER_LAYER] - 1].out_channels
        # The tiny test net's features are O(1) already (see features._tiny_net).
        self.input_scale = INPUT_SCALE if cfg.model == "vgg16" else 1.0
        self.decoder = build_decoder(in_channels, cfg.decoder_scale, self.input_scale, cfg.widths)
        self.input_encoder = self.encoder
        if cfg.input_encoder:
            # Fine-tuning for the distilled encoder (fast_distill.py): the decoder learns to
            # paint from its features, while the losses stay on VGG16's.
            from .fast_distill import slim_extractor
            path = None if cfg.input_encoder == "slim" else cfg.input_encoder
            self.input_encoder = slim_extractor(path, self.device, self.encoder.precision)[0]
        if cfg.init:
            start_from(load_decoder(cfg.init)[0], self.decoder, cfg.init)
        self.decoder = self.decoder.to(self.device, memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 1.0 / (1.0 + cfg.lr_decay * step))
        self.average = _ema_copy(self.decoder, cfg.ema) if cfg.ema else None
        self.in_channels, self.done = in_channels, 0

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # One generator per step: a resumed run draws the same batches as an unbroken one.
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        c = random_crops(self.photos, self.cfg.batch, self.cfg.crop, gen)
        s = random_crops(self.paintings, self.cfg.batch, self.cfg.crop, gen)
        return (c.to(self.device, memory_format=torch.channels_last),
                s.to(self.device, memory_format=torch.channels_last))

    def losses(self, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        with torch.no_grad():
            f_c = self.input_encoder(content)[ENCODER_LAYER]
            f_s = self.encoder(style)
            s_in = self.input_encoder(style)[ENCODER_LAYER] if cfg.input_encoder \
                else f_s[ENCODER_LAYER]
            target = transform(f_c, style_statistics(s_in, cfg.whiten > 0), cfg.whiten)
        with self.encoder._autocast():
            output = self.decoder(target)
        f_o = self.encoder(output.float())
        content_l = _relative(f_o[ENCODER_LAYER], target)
        stats_l = sum(_relative(a, b) for layer in STATS_LAYERS
                      for a, b in zip(feature_stats(f_o[layer]), feature_stats(f_s[layer])))
        gram_l = sum(_gram_term(f_o[layer], f_s[layer], cfg.gram_distance)
                     for layer in cfg.gram_layers)
        total = content_l + cfg.style_weight * stats_l + cfg.gram_weight * gram_l
        return {"total": total, "content": content_l, "stats": stats_l, "gram": gram_l}

    def warmup_losses(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """‖g(f(c)) − c‖²: the decoder first learns to invert the encoder.

        Not in the paper: with only the feature losses a fresh decoder takes thousands of
        steps to find the photo's structure; a pixel loss teaches it that in a few hundred
        cheap steps (no pass through the loss network), and the AdaIN losses start from there.
        """
        with torch.no_grad():
            f_c = self.input_encoder(content)[ENCODER_LAYER]
        with self.encoder._autocast():
            output = self.decoder(f_c).float()
        pixel = (output - content).pow(2).mean()
        return {"total": pixel, "pixel": pixel}

    def step(self) -> dict[str, float]:
        self.decoder.train()
        content, style = self.batch(self.done)
        if self.done < self.cfg.warmup_steps:
            losses = self.warmup_losses(content)
        else:
            losses = self.losses(content, style)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        # Early on a random decoder's Gram errors are huge; clipping keeps one bad batch
        # from throwing the decoder into dead ReLUs.
        torch.nn.utils.clip_grad_norm_(self.decoder.parameters(), 10.0)
        self.optimizer.step()
        self.schedule.step()
        if self.average is not None:
            self.average.update_parameters(self.decoder)
        self.done += 1
        return {k: float(v.detach()) for k, v in losses.items()}

    @property
    def result(self) -> torch.nn.Module:
        """The decoder that is previewed and exported: the running average when --ema is on."""
        return self.average.module if self.average is not None else self.decoder

    @torch.no_grad()
    def preview(self, n: int = 4) -> torch.Tensor:
        """Rows of photo | painting | result for fixed pairs, as one picture."""
        decoder = self.result.eval()
        gen = torch.Generator().manual_seed(12345)
        size = max(self.cfg.crop, 192)
        c = random_crops(self.photos, n, min(size, _min_side(self.photos)), gen)
        s = random_crops(self.paintings, n, min(size, _min_side(self.paintings)), gen)
        c = I.resize(c, size=(size, size)).to(self.device)
        s = I.resize(s, size=(size, size)).to(self.device)
        f_c = self.input_encoder(c)[ENCODER_LAYER]
        target = transform(f_c, style_statistics(self.input_encoder(s)[ENCODER_LAYER],
                                                  self.cfg.whiten > 0), self.cfg.whiten)
        with self.encoder._autocast():
            out = decoder(target).float().clamp(0, 1)
        rows = [torch.cat([c[i], s[i], out[i]], dim=-1) for i in range(n)]
        return torch.cat(rows, dim=-2).unsqueeze(0).cpu()

    def state(self) -> dict:
        state = {"decoder": self.decoder.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "schedule": self.schedule.state_dict(), "step": self.done,
                 "config": json.dumps(asdict(self.cfg))}
        if self.average is not None:
            state["average"] = self.average.state_dict()
        return state

    def load_state(self, state: dict) -> None:
        self.decoder.load_state_dict(state["decoder"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.done = int(state["step"])
        if self.average is not None:
            if "average" in state:
                self.average.load_state_dict(state["average"])
            else:  # a checkpoint from a run without --ema: the average starts here
                self.average = _ema_copy(self.decoder, self.cfg.ema)

    def export(self, path: Path, last: dict[str, float]) -> None:
        """Write the decoder in fp16 with its recipe as metadata, atomically."""
        from safetensors.torch import save

        cfg = self.cfg
        state = {k: v.detach().to("cpu", torch.float16).contiguous()
                 for k, v in self.result.state_dict().items()}
        meta = decoder_metadata(
            f"{cfg.model}-caffe" if cfg.model == "vgg16" else cfg.model,
            in_channels=self.in_channels, scale=cfg.decoder_scale,
            widths=cfg.widths, input_scale=self.input_scale, steps=self.done,
            init=Path(cfg.init).name if cfg.init else "",
            input_encoder=Path(cfg.input_encoder).name if cfg.input_encoder else "",
            gram_layers=",".join(cfg.gram_layers), gram_distance=cfg.gram_distance,
            style_weight=cfg.style_weight, gram_weight=cfg.gram_weight, whiten=cfg.whiten,
            ema=cfg.ema, batch=cfg.batch, crop=cfg.crop,
            losses=json.dumps({k: round(v, 4) for k, v in last.items()}),
            photos=Path(cfg.photos).name, paintings=Path(cfg.paintings).name)
        data = save(state, metadata=meta)
        I._atomic_write(path, lambda f: f.write(data))


def start_from(small: torch.nn.Sequential, decoder: torch.nn.Sequential, name: str) -> None:
    """Copy the trained decoder ``small`` into ``decoder``, which may have extra convs at the
    end of its blocks (--widths deeper than --init's). Each extra conv starts as the identity
    (Net2DeeperNet, Chen et al. 2016): its input is a ReLU's output, so conv and ReLU pass
    it unchanged and training starts from exactly the pictures ``small`` paints."""
    have, want = _conv_blocks(small), _conv_blocks(decoder)
    fits = len(have) == len(want) and all(
        len(a) <= len(b) and all(x.weight.shape == y.weight.shape for x, y in zip(a, b)) and
        all(y.in_channels == y.out_channels for y in b[len(a):]) for a, b in zip(have, want))
    if not fits:
        raise ConfigError(f"--init {name} does not fit this decoder",
                          "use a decoder trained with the same --model and --decoder-scale; "
                          "--widths may only add convs of a block's last width")
    with torch.no_grad():
        for a, b in zip(have, want):
            for x, y in zip(a, b):
                y.weight.copy_(x.weight)
                y.bias.copy_(x.bias)
            for y in b[len(a):]:
                y.weight.zero_()
                y.weight[range(y.out_channels), range(y.in_channels), 1, 1] = 1.0
                y.bias.zero_()


def _conv_blocks(decoder: torch.nn.Sequential) -> list[list[torch.nn.Conv2d]]:
    """The decoder's convs, block by block (split at each upsampling); the last, which
    paints the picture, is a block of its own."""
    blocks: list[list[torch.nn.Conv2d]] = [[]]
    for module in decoder:
        if isinstance(module, torch.nn.Upsample):
            blocks.append([])
        elif isinstance(module, torch.nn.Conv2d):
            blocks[-1].append(module)
    return blocks[:-1] + [blocks[-1][:-1], blocks[-1][-1:]]


def _ema_copy(decoder: torch.nn.Module, decay: float):
    """A running average of the decoder's weights, w̄ ← decay·w̄ + (1 − decay)·w (Polyak
    averaging). Not in the AdaIN paper: it smooths out the step-to-step noise of small
    batches, which late in training moves the results more than the training itself."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(decoder, multi_avg_fn=get_ema_multi_avg_fn(decay))


def _min_side(pictures: list[torch.Tensor]) -> int:
    """The shortest side in the corpus: the largest crop every picture can give."""
    return min(min(p.shape[-2:]) for p in pictures)


def _gram_term(output: torch.Tensor, style: torch.Tensor, distance: bool) -> torch.Tensor:
    """One layer's Gram term: the batch's relative squared error, or (``distance``) the mean
    over pictures of the relative error itself, as painterly's style distance measures it.

    The squared error is dominated by relu5_1 (its relative error is ~0.9 against ~0.2 at
    relu2_1); the distance weighs each layer by its own scale, as the measure does."""
    g_o, g_s = gram_matrix(output), gram_matrix(style)
    if not distance:
        return style_loss(g_o, g_s)
    per_picture = (g_o - g_s).pow(2).sum((1, 2)) / g_s.pow(2).sum((1, 2)).clamp_min(1e-8)
    return (per_picture + 1e-8).sqrt().mean()  # + ε: a finite gradient at zero error


def _relative(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (x - target).pow(2).sum() / target.pow(2).sum().clamp_min(1e-8)


def save_checkpoint(trainer, out: Path, last: dict[str, float]) -> None:
    """Write the resumable checkpoint, the fp16 network and the preview, each atomically."""
    I._atomic_write(out / CHECKPOINT, lambda f: torch.save(trainer.state(), f))
    trainer.export(out / trainer.OUTPUT, last)
    I.save_image(trainer.preview(), out / PREVIEW)



def train(cfg: TrainConfig, resume: bool = False, callback: Optional[Callback] = None,
          cancel=None, log: Callable[[str], None] = lambda s: None) -> Path:
    """Train (or continue training) a decoder; returns the path of the exported decoder."""
    return run_training(Trainer, cfg, "decoder", resume, callback, cancel, log)


def run_training(make, cfg, what: str, resume: bool, callback: Optional[Callback], cancel,
                 log: Callable[[str], None]) -> Path:
    """Load the corpora, build ``make(cfg, photos, paintings)`` and run it (run_loop)."""
    out = prepare_run(cfg, resume)
    log("decoding training pictures…")
    photos = load_pictures(cfg.photos, cfg.crop)
    paintings = load_pictures(cfg.paintings, cfg.crop)
    log(f"{len(photos)} photographs, {len(paintings)} paintings")
    return run_loop(make(cfg, photos, paintings), cfg, out, resume, callback, cancel, log, what)


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
                          "pass --resume to continue it, or choose another --out")
    return out


def run_loop(trainer, cfg, out: Path, resume: bool, callback: Optional[Callback], cancel,
             log: Callable[[str], None], what: str) -> Path:
    """Step ``trainer`` to ``cfg.steps`` with checkpoints, previews, a loss log and progress;
    stops cleanly (checkpoint saved) on ``cancel`` or after ``cfg.minutes``."""
    checkpoint = out / CHECKPOINT
    if resume and checkpoint.exists():
        trainer.load_state(torch.load(checkpoint, map_location=trainer.device, weights_only=True))
        log(f"resumed at step {trainer.done}")
    last: dict[str, float] = {}
    started = saved = time.perf_counter()
    deadline = started + cfg.minutes * 60 if cfg.minutes else float("inf")
    if trainer.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: pick the fastest kernels once
    with open(out / LOG, "a") as log_file:
        while trainer.done < cfg.steps:
            last = trainer.step()
            if trainer.done % 50 == 0 or trainer.done == cfg.steps:
                log_file.write(json.dumps({"step": trainer.done, **last,
                                           "seconds": round(time.perf_counter() - started, 1)}) + "\n")
                log_file.flush()
            if callback:
                callback(Progress(f"train {what}", what, trainer.done, cfg.steps, last,
                                  time.perf_counter() - started))
            now = time.perf_counter()
            due = now - saved > cfg.checkpoint_minutes * 60
            if due or trainer.done == cfg.steps or now >= deadline or (
                    cancel is not None and cancel.is_set()):
                save_checkpoint(trainer, out, last)
                saved = time.perf_counter()
            elif cfg.preview_every and trainer.done % cfg.preview_every == 0:
                I.save_image(trainer.preview(), out / PREVIEW)
            if cancel is not None and cancel.is_set():
                from .errors import Cancelled
                raise Cancelled(f"stopped at step {trainer.done}; checkpoint saved",
                                "continue with --resume")
            if now >= deadline:
                log(f"stopped after {cfg.minutes:g} minutes at step {trainer.done}; "
                    "--resume continues")
                break
    return out / trainer.OUTPUT
