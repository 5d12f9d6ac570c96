"""Training the AdaIN decoder (Huang & Belongie 2017, section 6) on photographs and paintings.

    loss = ‖f(g(t)) − t‖² + λ Σ_l (‖μ(φ_l(g(t))) − μ(φ_l(s))‖² + ‖σ(…) − σ(…)‖²) + γ Σ_l ‖G_l − A_l‖²

with t = AdaIN(f(c), f(s)), l over relu1_1…relu4_1. Departures from the paper, each so that
it trains well in a CPU's budget: every term is relative to its target's size (painterly's
losses are; the weights then need no retuning for VGG's Caffe scale), and a Gram term (γ)
joins the paper's mean/deviation terms because the statistics alone drop the correlations
between channels that make up much of a painting's texture.

Pictures come straight from tar files of JPEGs (the corpora in ../shared/datasets), decoded
once into memory (``corpus``); batches are random crops with random flips. The loop,
checkpoints and previews are ``training``'s.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from ..corpus import random_crops
from ..errors import ConfigError, check_option
from ..features import NetSpec, build_extractor
from ..losses import gram_matrix, relative_error, style_loss
from ..nets import get_net, layer_names
from ..nets.decoder import (DECODER_WIDTHS, INPUT_SCALE, SKIP_LAYERS, SkipDecoder, build_decoder,
                           check_widths, start_from)
from ..progress import Callback
from ..training import Trainable, run_training
from .models import (ENCODER_LAYER, STATS_LAYERS, decoder_metadata, features_name,
                     load_decoder, load_slim_encoder)
from .ops import adain, feature_stats, style_statistics, target_features

DECODER = "decoder.safetensors"
DETAIL_LAYER = "relu3_1"  # in STATS_LAYERS: the loss net gives it anyway


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
    skips: bool = False                 # join the input encoder's relu3_1, relu2_1, relu1_1
                                        # into the decoder (nets.decoder.SkipDecoder)
    detail_weight: float = 0.0          # a content term on relu3_1 against the photo itself,
                                        # for the photo's edges; 0 = none
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
        check_option(self.detail_weight >= 0, "detail_weight", self.detail_weight,
                     "a number ≥ 0")
        check_option(self.minutes >= 0, "minutes", self.minutes, "a number ≥ 0 (0 = no limit)")
        object.__setattr__(self, "widths", check_widths(self.widths))


class Trainer(Trainable):
    """Holds the nets, the optimiser and the data; ``step()`` runs one batch."""

    OUTPUT = DECODER
    WHAT = "decoder"
    STATE = "decoder"
    # Early on a random decoder's Gram errors are huge; clipping keeps one bad batch
    # from throwing the decoder into dead ReLUs.
    CLIP_NORM = 10.0

    def __init__(self, cfg: TrainConfig, photos: list[torch.Tensor], paintings: list[torch.Tensor]):
        super().__init__(cfg, photos, paintings)
        layers = tuple(dict.fromkeys(STATS_LAYERS + tuple(cfg.gram_layers)))
        self.encoder = build_extractor(NetSpec(cfg.model, cfg.weights), layers,
                                       self.device, cfg.precision)
        in_channels = self.encoder.out_channels(ENCODER_LAYER)
        # The tiny test net's features are O(1) already (see nets._random_init); only a
        # pretrained net's Caffe-scale features need INPUT_SCALE.
        self.input_scale = INPUT_SCALE if get_net(cfg.model).pretrained else 1.0
        self.decoder = build_decoder(in_channels, cfg.decoder_scale, self.input_scale, cfg.widths)
        self.input_encoder = self.encoder
        if cfg.input_encoder:
            # Fine-tuning for the distilled encoder (fast/distill.py): the decoder learns to
            # paint from its features, while the losses stay on VGG16's.
            path = None if cfg.input_encoder == "slim" else cfg.input_encoder
            layers = (ENCODER_LAYER, *SKIP_LAYERS) if cfg.skips else (ENCODER_LAYER,)
            self.input_encoder = load_slim_encoder(path, self.device, self.encoder.precision,
                                                   layers)[0]
        self.skip_channels = [self.input_encoder.out_channels(layer) for layer in SKIP_LAYERS] \
            if cfg.skips else []
        self._start(cfg)
        self.decoder = self.decoder.to(self.device, memory_format=torch.channels_last)
        self.optimise(self.decoder.parameters())
        self.average = ema_copy(self.decoder, cfg.ema) if cfg.ema else None
        self.in_channels = in_channels

    def _start(self, cfg: TrainConfig) -> None:
        """The decoder's first weights: fresh, or the ``init`` file's (a plain decoder grown
        deeper or given skips, or a decoder with skips to go on training)."""
        start = load_decoder(cfg.init)[0] if cfg.init else None
        if isinstance(start, SkipDecoder):
            if not cfg.skips:
                raise ConfigError(f"`init` {cfg.init} has skips", "train it with `skips` on")
            self.decoder = SkipDecoder(self.decoder, self.skip_channels, self.input_scale)
            self.decoder.load_state_dict(start.state_dict())
            return
        if start is not None:
            start_from(start, self.decoder, cfg.init)
        if cfg.skips:
            self.decoder = SkipDecoder(self.decoder, self.skip_channels, self.input_scale)

    def decode(self, decoder, target: torch.Tensor, skips) -> torch.Tensor:
        with self.encoder.autocast():
            return decoder(target, skips) if self.cfg.skips else decoder(target)

    def skips(self, content: dict, style: Optional[dict]) -> list[torch.Tensor]:
        """The decoder's skips: the photo's shallow layers given the painting's statistics
        (or, with no painting, as they are: the warm-up's reconstruction)."""
        if not self.cfg.skips:
            return []
        return [content[layer] if style is None else adain(content[layer], *feature_stats(style[layer]))
                for layer in SKIP_LAYERS]

    @property
    def trained(self) -> torch.nn.Module:
        return self.decoder

    @property
    def result(self) -> torch.nn.Module:
        """The decoder that is previewed and exported: the running average when `ema` is on."""
        return self.average.module if self.average is not None else self.decoder

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # One generator per step: a resumed run draws the same batches as an unbroken one.
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        c = random_crops(self.photos, self.cfg.batch, self.cfg.crop, gen)
        s = random_crops(self.paintings, self.cfg.batch, self.cfg.crop, gen)
        return (c.to(self.device, memory_format=torch.channels_last),
                s.to(self.device, memory_format=torch.channels_last))

    def losses(self, step: int) -> dict[str, torch.Tensor]:
        content, style = self.batch(step)
        if step < self.cfg.warmup_steps:
            return self.warmup_losses(content)
        return self.adain_losses(content, style)

    def adain_losses(self, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        with torch.no_grad():
            c_in = self.input_encoder(content)
            f_s = self.encoder(style)
            s_in = self.input_encoder(style) if cfg.input_encoder else f_s
            target = target_features(c_in[ENCODER_LAYER],
                                     style_statistics(s_in[ENCODER_LAYER], cfg.whiten > 0),
                                     cfg.whiten)
            skips = self.skips(c_in, s_in)
            if cfg.detail_weight:
                detail_target = (self.encoder(content) if cfg.input_encoder else c_in)[DETAIL_LAYER]
        output = self.decode(self.decoder, target, skips)
        f_o = self.encoder(output.float())
        content_l = relative_error(f_o[ENCODER_LAYER], target)
        # Not in AdaIN: its content term is on relu4_1 only, one value per 8 × 8 pixels, and
        # does not ask for the photo's finer edges, which the skips can give; this one does.
        detail_l = relative_error(f_o[DETAIL_LAYER], detail_target) if cfg.detail_weight \
            else torch.zeros(())
        stats_l = sum(relative_error(a, b) for layer in STATS_LAYERS
                      for a, b in zip(feature_stats(f_o[layer]), feature_stats(f_s[layer])))
        gram_l = sum(gram_term(f_o[layer], f_s[layer], cfg.gram_distance)
                     for layer in cfg.gram_layers)
        total = content_l + cfg.style_weight * stats_l + cfg.gram_weight * gram_l \
            + cfg.detail_weight * detail_l
        return {"total": total, "content": content_l, "stats": stats_l, "gram": gram_l,
                "detail": detail_l}

    def warmup_losses(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """‖g(f(c)) − c‖²: the decoder first learns to invert the encoder.

        Not in the paper: with only the feature losses a fresh decoder takes thousands of
        steps to find the photo's structure; a pixel loss teaches it that in a few hundred
        cheap steps (no pass through the loss network), and the AdaIN losses start from there.
        """
        with torch.no_grad():
            c_in = self.input_encoder(content)
        output = self.decode(self.decoder, c_in[ENCODER_LAYER], self.skips(c_in, None)).float()
        pixel = (output - content).pow(2).mean()
        return {"total": pixel, "pixel": pixel}

    def after_update(self) -> None:
        if self.average is not None:
            self.average.update_parameters(self.decoder)

    def preview_columns(self, c: torch.Tensor, s: torch.Tensor) -> list[torch.Tensor]:
        """The result for each pair."""
        decoder = self.result.eval()
        c_in, s_in = self.input_encoder(c), self.input_encoder(s)
        target = target_features(c_in[ENCODER_LAYER], style_statistics(s_in[ENCODER_LAYER],
                                                                      self.cfg.whiten > 0),
                                 self.cfg.whiten)
        return [self.decode(decoder, target, self.skips(c_in, s_in)).float().clamp(0, 1)]

    def extra_state(self) -> dict:
        return {} if self.average is None else {"average": self.average.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        if self.average is not None:
            if "average" in state:
                self.average.load_state_dict(state["average"])
            else:  # a checkpoint from a run without `ema`: the average starts here
                self.average = ema_copy(self.decoder, self.cfg.ema)

    def metadata(self, last: dict[str, float]) -> dict[str, str]:
        cfg = self.cfg
        return decoder_metadata(
            features_name(cfg.model),
            in_channels=self.in_channels, scale=cfg.decoder_scale,
            widths=cfg.widths, input_scale=self.input_scale, steps=self.done,
            init=Path(cfg.init).name if cfg.init else "",
            input_encoder=Path(cfg.input_encoder).name if cfg.input_encoder else "",
            gram_layers=",".join(cfg.gram_layers), gram_distance=cfg.gram_distance,
            style_weight=cfg.style_weight, gram_weight=cfg.gram_weight, whiten=cfg.whiten,
            detail_weight=cfg.detail_weight,
            ema=cfg.ema, batch=cfg.batch, crop=cfg.crop,
            **({"skip_channels": json.dumps(self.skip_channels),
                "skip_layers": ",".join(SKIP_LAYERS)} if cfg.skips else {}),
            losses=json.dumps({k: round(v, 4) for k, v in last.items()}),
            photos=Path(cfg.photos).name, paintings=Path(cfg.paintings).name)


def ema_copy(decoder: torch.nn.Module, decay: float):
    """A running average of the decoder's weights, w̄ ← decay·w̄ + (1 − decay)·w (Polyak
    averaging). Not in the AdaIN paper: it smooths out the step-to-step noise of small
    batches, which late in training moves the results more than the training itself."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(decoder, multi_avg_fn=get_ema_multi_avg_fn(decay))


def gram_term(output: torch.Tensor, style: torch.Tensor, distance: bool) -> torch.Tensor:
    """One layer's Gram term: the batch's relative squared error, or (``distance``) the mean
    over pictures of the relative error itself, as painterly's style distance measures it.

    The squared error is dominated by relu5_1 (its relative error is ~0.9 against ~0.2 at
    relu2_1); the distance weighs each layer by its own scale, as the measure does."""
    g_o, g_s = gram_matrix(output), gram_matrix(style)
    if not distance:
        return style_loss(g_o, g_s)
    per_picture = (g_o - g_s).pow(2).sum((1, 2)) / g_s.pow(2).sum((1, 2)).clamp_min(1e-8)
    return (per_picture + 1e-8).sqrt().mean()  # + ε: a finite gradient at zero error


def train(cfg: TrainConfig, resume: bool = False, callback: Optional[Callback] = None,
          cancel=None, log: Callable[[str], None] = lambda s: None) -> Path:
    """Train (or continue training) a decoder; returns the path of the exported decoder."""
    return run_training(Trainer, cfg, resume, callback, cancel, log)
