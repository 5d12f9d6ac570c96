"""The decoder of fast style transfer: upsampling convolutions from relu4_1 back to pixels.

Architecture only (no weights, no files): ``build_decoder`` for training, ``fuse_upsampling``
for a faster inference form, ``start_from`` to grow a trained decoder deeper.
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError, check_option

# Channel widths of the decoder, from relu4_1 (1/8 size) back up to the picture. It mirrors
# the encoder's blocks but is narrower than AdaIN's (which mirrors VGG19 exactly): on a 2-core
# CPU the full mirror costs as much as the encoder, and a slimmer one trains in a day's budget.
# These are a fresh decoder's; a file's own are in its metadata (painterly's has a second
# full-size conv, grown with train-fast --widths).
DECODER_WIDTHS = ((256,), (128, 128), (64, 64), (32,))
# Caffe-convention VGG features are large (relu4_1's deviation is ~370 on photos); scaling
# them to O(1) lets the decoder train from the default initialisation without blowing up.
INPUT_SCALE = 1 / 256


def build_decoder(in_channels: int = 512, scale: float = 1.0,
                  input_scale: float = INPUT_SCALE,
                  widths: Sequence[Sequence[int]] = DECODER_WIDTHS) -> nn.Sequential:
    """Upsample + 3×3 conv blocks (no transposed convolutions, so no checkerboards) with
    reflection padding (no dark borders). ``widths``: the conv widths of each of the four
    blocks (1/8, 1/4, 1/2 and full size); ``scale`` < 1 gives the tiny test decoder."""
    layers: list[nn.Module] = [Scale(input_scale)]
    channels = in_channels
    for block, widths in enumerate(check_widths(widths)):
        if block:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        for width in widths:
            width = max(4, round(width * scale))
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, width, 3), nn.ReLU()]
            channels = width
    layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, 3, 3)]
    return nn.Sequential(*layers)


class SubpixelConv(nn.Module):
    """Nearest 2× upsampling, reflection padding and a 3×3 conv, computed at the low size.

    After nearest upsampling each output pixel's 3×3 window covers only 2×2 input pixels, so
    the trained 3×3 kernel folds into four 2×2 kernels, one per output phase (row and column
    parity); reflection padding of the upsampled map equals replicate padding of the input.
    The same picture (up to rounding) with 16 instead of 36 multiply-adds per weight and
    output pixel, and no 4× upsampled map in memory. Used for inference; training keeps the
    plain layers.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        w = conv.weight.detach()                       # [out, in, 3, 3]
        # Rows (and likewise columns) of the 3×3 kernel that land on input rows i-1, i (even
        # phase) and i, i+1 (odd phase).
        fold = torch.tensor([[[1., 0., 0.], [0., 1., 1.]], [[1., 1., 0.], [0., 0., 1.]]],
                            dtype=w.dtype)             # [phase, 2, 3]
        kernels = [torch.einsum("ih,jw,ochw->ocij", fold[a], fold[b], w)
                   for a in (0, 1) for b in (0, 1)]    # 4 × [out, in, 2, 2]
        self.out_channels = w.shape[0]
        self.weight = nn.Parameter(torch.cat(kernels), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().repeat(4), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"),
                                 self.weight, self.bias)          # [B, 4·out, h+1, w+1]
        c = self.out_channels
        # Each phase is copied once, straight into its rows and columns of the output (in
        # channels-last order, which the next conv reads without converting).
        out = torch.empty((x.shape[0], c, 2 * h, 2 * w), dtype=y.dtype, device=y.device,
                          memory_format=torch.channels_last)
        grid = out.unflatten(3, (w, 2)).unflatten(2, (h, 2))     # [B, out, h, a, w, b]
        for a in (0, 1):
            for b in (0, 1):
                phase = 2 * a + b
                grid[:, :, :, a, :, b] = y[:, phase * c: (phase + 1) * c, a: a + h, b: b + w]
        return out


class EdgeReflect(nn.Module):
    """``nn.ReflectionPad2d(1)`` for inference, as five copies into a map of the input's
    memory format: the same numbers, but torch's reflection_pad2d is slow on channels-last
    maps (48 ms against 8 ms for 32 × 832 × 1088 on 2 cores), the decoder's format."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < 2 or w < 2:  # torch's own says what is wrong
            return nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        out = torch.empty((*x.shape[:-2], h + 2, w + 2), dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last if channels_last
                          else torch.contiguous_format)
        out[..., 1:-1, 1:-1] = x
        out[..., 0, 1:-1] = x[..., 1, :]
        out[..., -1, 1:-1] = x[..., -2, :]
        out[..., 0] = out[..., 2]
        out[..., -1] = out[..., -3]
        return out


def fuse_upsampling(decoder: nn.Module) -> nn.Module:
    """The decoder with each (Upsample, ReflectionPad2d(1), 3×3 Conv2d) run as a SubpixelConv,
    and its other one-pixel reflection pads as EdgeReflect."""
    if isinstance(decoder, SkipDecoder):
        return decoder.fused()
    if not isinstance(decoder, nn.Sequential):
        return decoder
    layers, modules = [], list(decoder)
    i = 0
    while i < len(modules):
        window = modules[i: i + 3]
        if (len(window) == 3 and isinstance(window[0], nn.Upsample)
                and isinstance(window[1], nn.ReflectionPad2d) and window[1].padding == (1,) * 4
                and isinstance(window[2], nn.Conv2d) and window[2].kernel_size == (3, 3)):
            layers.append(SubpixelConv(window[2]))
            i += 3
        elif isinstance(modules[i], nn.ReflectionPad2d) and modules[i].padding == (1,) * 4:
            layers.append(EdgeReflect())
            i += 1
        else:
            layers.append(modules[i])
            i += 1
    return nn.Sequential(*layers)


SKIP_LAYERS = ("relu3_1", "relu2_1", "relu1_1")  # joined at 1/4, 1/2 and full size
# The joins' outputs are multiplied by this (an equalised learning rate, Karras et al. 2018):
# grown onto an already trained decoder, they learn ten times as fast as its own convs.
JOIN_GAIN = 10.0


class SkipDecoder(nn.Module):
    """The decoder with the encoder's shallower layers joined in, as a U-Net's skips.

    Departure from AdaIN, whose decoder sees only relu4_1 (one value per 8 × 8 pixels): it
    has to guess every edge finer than that, and guesses blurred ones (the fish, the petrol
    pump of the held-out pairs in docs/fast.md). Here relu3_1, relu2_1 and relu1_1 — each
    first given the painting's own means and deviations at that layer by AdaIN, so they
    bring the painting's colours and fine texture along with the photo's edges — join the
    decoder at 1/4, 1/2 and full size, each through a 1×1 conv added after the first conv
    of that size (Avatar-Net, Sheng et al. 2018, joins its encoder's skips through AdaIN
    likewise). The joins start at zero, so a decoder grown from a plain one paints exactly
    its pictures until training teaches it to use them.
    """

    def __init__(self, decoder: nn.Sequential, skip_channels: Sequence[int],
                 input_scale: float = INPUT_SCALE):
        super().__init__()
        cuts, widths = _join_points(decoder)
        if len(skip_channels) != len(cuts):
            raise ConfigError(f"{len(skip_channels)} skip layers for {len(cuts)} joins",
                              "give one skip layer per upsampling")
        bounds = [0, *cuts, len(decoder)]
        self.segments = nn.ModuleList(decoder[a:b] for a, b in zip(bounds, bounds[1:]))
        self.joins = nn.ModuleList(nn.Conv2d(c, w, 1) for c, w in zip(skip_channels, widths))
        for join in self.joins:
            nn.init.zeros_(join.weight)
            nn.init.zeros_(join.bias)
        self.input_scale = input_scale
        self.folded = False  # JOIN_GAIN and input_scale multiplied into the joins (fused)

    def forward(self, features: torch.Tensor, skips: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """``skips``: one map per join, or none (the decoder without its skips)."""
        x = self.segments[0](features)
        for k, segment in enumerate(self.segments[1:]):
            if skips:
                if self.folded:
                    x = x + self.joins[k](skips[k])
                else:
                    x = x + JOIN_GAIN * self.joins[k](skips[k] * self.input_scale)
            x = segment(x)
        return x

    def fused(self) -> "SkipDecoder":
        """A copy of the decoder for inference: its upsampling convs run as SubpixelConvs,
        and the joins' gain and input scale folded into their weights (two passes fewer over
        each skip map)."""
        fused = copy.deepcopy(self)
        fused.segments = nn.ModuleList(fuse_upsampling(s) for s in fused.segments)
        if not fused.folded:
            with torch.no_grad():
                for join in fused.joins:
                    join.weight.mul_(JOIN_GAIN * fused.input_scale)
                    join.bias.mul_(JOIN_GAIN)
            fused.folded = True
        return fused


def _join_points(decoder: nn.Sequential) -> tuple[list[int], list[int]]:
    """Where skips join a plain decoder (just after the first ReLU that follows each
    upsampling) and the width of the feature map there."""
    cuts, widths, waiting, width = [], [], False, 0
    for i, module in enumerate(decoder):
        if isinstance(module, nn.Upsample):
            waiting = True
        elif isinstance(module, nn.Conv2d):
            width = module.out_channels
        elif isinstance(module, nn.ReLU) and waiting:
            cuts.append(i + 1)
            widths.append(width)
            waiting = False
    return cuts, widths


class Scale(nn.Module):
    """Multiply by a fixed factor (no parameters)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def check_widths(widths, shown=None) -> tuple[tuple[int, ...], ...]:
    """The decoder's widths as a tuple of four tuples of positive integers, or a ConfigError
    (naming ``shown``, the widths as the user wrote them)."""
    try:
        out = tuple(tuple(int(w) for w in block) for block in widths)
    except (TypeError, ValueError):
        out = ()
    check_option(len(out) == 4 and all(out) and all(w >= 1 for b in out for w in b), "widths",
                 widths if shown is None else shown,
                 "four blocks of conv widths, '/' between blocks, e.g. 256/128,128/64,64/32")
    return out


def parse_widths(text: str) -> tuple[tuple[int, ...], ...]:
    """'256/128,128/64,64/32' (blocks split by '/', widths by ',') as build_decoder's widths."""
    return check_widths([block.split(",") for block in text.split("/")], shown=text)


def start_from(small: torch.nn.Sequential, decoder: torch.nn.Sequential, name: str) -> None:
    """Copy the trained decoder ``small`` into ``decoder``, which may have extra convs at the
    end of its blocks (``widths`` deeper than the ``init`` file's). Each extra conv starts as the identity
    (Net2DeeperNet, Chen et al. 2016): its input is a ReLU's output, so conv and ReLU pass
    it unchanged and training starts from exactly the pictures ``small`` paints."""
    have, want = _conv_blocks(small), _conv_blocks(decoder)
    fits = len(have) == len(want) and all(
        len(a) <= len(b) and all(x.weight.shape == y.weight.shape for x, y in zip(a, b)) and
        all(y.in_channels == y.out_channels for y in b[len(a):]) for a, b in zip(have, want))
    if not fits:
        raise ConfigError(f"`init` {name} does not fit this decoder",
                          "use a decoder trained with the same `model` and `decoder_scale`; "
                          "`widths` may only add convs of a block's last width")
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
