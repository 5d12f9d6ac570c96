"""Temporal consistency for video: optical flow, warping, and Ruder's consistency check.

After Ruder, Dosovitskiy & Brox, *Artistic style transfer for videos* (GCPR 2016): the flow
between consecutive *input* frames, forward and backward, says where each pixel of frame t
was in frame t−1; where the two flows agree (no occlusion, no motion boundary) the painting of
frame t−1, warped along the flow, is a valid guess for frame t. The warping error of Lai et
al., *Learning Blind Video Temporal Consistency* (ECCV 2018), measures what is left of the
flicker. Departures from the papers are commented where they happen. OpenCV (the optional
extra ``painterly[video]``) is imported only when a flow is computed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError

CV2_HINT = "pip install 'painterly[video]' (or: pip install opencv-python-headless)"


def _cv2():
    try:
        import cv2  # optional extra [video]
    except ImportError as exc:
        raise ConfigError("temporal consistency needs OpenCV", CV2_HINT) from exc
    return cv2


def gray(frame: torch.Tensor | np.ndarray) -> np.ndarray:
    """A frame ([1, 3, H, W] in [0, 1], or uint8 [H, W, 3]) as uint8 luma [H, W]."""
    if isinstance(frame, torch.Tensor):
        frame = frame.detach()[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    rgb = frame.astype(np.float32)
    return np.clip(rgb @ np.array([0.299, 0.587, 0.114], np.float32), 0, 255).astype(np.uint8)


class FlowEstimator:
    """Dense optical flow with OpenCV's DIS (Kroeger et al. 2016) on the CPU, no weights.

    Departure from Ruder et al.: they used DeepFlow/EpicFlow (tens of seconds a frame); DIS
    at its "medium" preset costs ~10 ms per 512 px frame on one core, with variational
    refinement, and its errors are caught by the consistency check like any flow's.
    """

    def __init__(self, preset: str = "medium"):
        cv2 = _cv2()
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                   "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        self.dis = cv2.DISOpticalFlow_create(presets[preset])

    def __call__(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Flow [H, W, 2] (x, y) from ``source`` to ``target`` (uint8 luma): the pixel at p
        in ``source`` is at p + flow(p) in ``target``."""
        return self.dis.calc(np.ascontiguousarray(source), np.ascontiguousarray(target), None)


def warp(picture: torch.Tensor, flow: np.ndarray, mode: str = "bilinear") -> torch.Tensor:
    """Backward warping: out(p) = picture(p + flow(p)), bilinear (or bicubic), borders
    repeated.

    With ``flow`` the flow from frame t to frame t−1, this carries frame t−1's picture onto
    frame t."""
    _, _, h, w = picture.shape
    f = torch.from_numpy(np.ascontiguousarray(flow)).to(picture.device, torch.float32)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=picture.device),
                            torch.arange(w, dtype=torch.float32, device=picture.device),
                            indexing="ij")
    x = (xs + f[..., 0]) * (2 / max(w - 1, 1)) - 1
    y = (ys + f[..., 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([x, y], dim=-1)[None]
    return F.grid_sample(picture.float(), grid, mode=mode, padding_mode="border",
                         align_corners=True)


def _warp_flow(flow: np.ndarray, by: np.ndarray) -> np.ndarray:
    """``flow`` sampled at p + by(p): the other direction's flow, seen from this frame."""
    t = torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1)[None]
    return warp(t, by)[0].permute(1, 2, 0).numpy()


def consistency(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Ruder et al.'s reliability mask of ``backward`` (the flow from frame t to t−1, [H, W, 2])
    given ``forward`` (t−1 to t): 1 where the pixel of frame t was seen in frame t−1 and the
    flow is trusted, 0 where it was occluded (disocclusion) or lies on a motion boundary.

    Eq. 5: disoccluded where |w̃ + w|² > 0.01 (|w̃|² + |w|²) + 0.5, with w the backward flow
    and w̃ the forward flow warped by it (a round trip that does not come back);
    eq. 6: a motion boundary where |∇u|² + |∇v|² > 0.01 |w|² + 0.002.
    """
    w = backward.astype(np.float32)
    w_tilde = _warp_flow(forward.astype(np.float32), w)
    round_trip = ((w_tilde + w) ** 2).sum(-1)
    occluded = round_trip > 0.01 * ((w_tilde ** 2).sum(-1) + (w ** 2).sum(-1)) + 0.5
    du_y, du_x = np.gradient(w[..., 0])
    dv_y, dv_x = np.gradient(w[..., 1])
    boundary = du_x ** 2 + du_y ** 2 + dv_x ** 2 + dv_y ** 2 > 0.01 * (w ** 2).sum(-1) + 0.002
    # A pixel carried from outside frame t−1 has nothing to carry: also unreliable.
    h, wd = w.shape[:2]
    ys, xs = np.mgrid[0:h, 0:wd]
    outside = ((xs + w[..., 0] < 0) | (xs + w[..., 0] > wd - 1) |
               (ys + w[..., 1] < 0) | (ys + w[..., 1] > h - 1))
    return (~(occluded | boundary | outside)).astype(np.float32)


class Stabilizer:
    """Blend each painted frame with the previous painted frame carried along the flow of
    the input video, where the flow is reliable (Ruder's mask): strokes stay on the objects
    they paint.

    Departures from Ruder et al., for a feed-forward net: there is no optimisation to add a
    temporal loss to, so the loss's minimiser is taken directly, per pixel: blend = painted +
    s·c·(warped − painted) with c the mask and s = ``strength``. It is a running average along
    each pixel's trajectory; disoccluded pixels take the new painting at once. The mask is
    softened by a small blur so the blend leaves no seams along occlusion edges.

    Averaging two paintings whose strokes differ washes the strokes out (the running average
    of uncorrelated textures keeps ~40 % of their contrast at s = 0.7), and bilinear warping
    blurs a little more each frame: on the pan-and-zoom clip the style distance rose 45 %.
    So the previous frame is warped bicubically, and the blend's detail (what a 9 px box blur
    removes) is scaled back up to the local contrast of the frame's own painting (at most
    ``max_gain``×, never down), as variance-preserving texture blending does (Heitz & Neyret
    2018). Where the two paintings agree the gain is 1; the flicker stays 8× lower while the
    style distance stays within 2 % of frame-by-frame painting (docs/video.md).
    """

    def __init__(self, strength: float, max_gain: float = 2.0, radius: int = 4):
        self.strength, self.max_gain, self.radius = strength, max_gain, radius
        self.flow = FlowEstimator() if strength > 0 else None
        self.previous_frame = None   # luma of the last input frame, at the painted size
        self.previous_out = None     # the last frame as written

    def __call__(self, frame: np.ndarray, painted: torch.Tensor) -> torch.Tensor:
        """``frame``: the input frame (uint8 [H, W, 3], any size); ``painted``: its painting
        [1, 3, h, w]. Returns the frame to write."""
        if self.flow is None:
            return painted
        h, w = painted.shape[-2:]
        current = gray(frame)
        if current.shape != (h, w):
            current = _cv2().resize(current, (w, h), interpolation=_cv2().INTER_AREA)
        out = painted
        if self.previous_out is not None:
            backward = self.flow(current, self.previous_frame)
            forward = self.flow(self.previous_frame, current)
            mask = soften(consistency(backward, forward))
            warped = warp(self.previous_out, backward, mode="bicubic")
            c = torch.from_numpy(mask)[None, None] * self.strength
            out = restore_contrast(painted + c * (warped - painted), painted, self.radius,
                                   self.max_gain).clamp(0, 1)
        self.previous_frame, self.previous_out = current, out
        return out


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    size = 2 * radius + 1
    return F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), size, stride=1)


def restore_contrast(blend: torch.Tensor, reference: torch.Tensor, radius: int = 4,
                     max_gain: float = 2.0) -> torch.Tensor:
    """``blend`` with its detail (itself minus its local mean) scaled up to the local contrast
    of ``reference``'s detail, by a gain between 1 and ``max_gain``."""
    low = _box(blend, radius)
    detail = blend - low
    local = _box((detail ** 2).mean(1, keepdim=True), radius).sqrt()
    wanted = _box(((reference - _box(reference, radius)) ** 2).mean(1, keepdim=True), radius).sqrt()
    gain = (wanted / (local + 1e-4)).clamp(1.0, max_gain)
    return low + detail * gain


def soften(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """The mask eroded-then-blurred a little: unreliable regions grow by ``radius`` px and
    their edges fade (Ruder's hard mask, softened for a per-pixel blend)."""
    cv2 = _cv2()
    size = 2 * radius + 1
    eroded = cv2.erode(mask, np.ones((size, size), np.uint8))
    return cv2.blur(eroded, (size, size))


def warping_error(outputs: Sequence[torch.Tensor], inputs: Sequence[np.ndarray]) -> float:
    """Lai et al.'s warping error: each output frame t−1 warped onto frame t with the input
    video's flow, the mean squared difference (pixels in [0, 1]) over the pixels the
    consistency check keeps, averaged over the frame pairs."""
    flow = FlowEstimator()
    errors = []
    for t in range(1, len(outputs)):
        h, w = outputs[t].shape[-2:]
        a, b = (_cv2().resize(gray(f), (w, h), interpolation=_cv2().INTER_AREA)
                for f in (inputs[t - 1], inputs[t]))
        backward, forward = flow(b, a), flow(a, b)
        mask = torch.from_numpy(consistency(backward, forward))[None, None]
        warped = warp(outputs[t - 1].float(), backward)
        diff = ((outputs[t].float() - warped) ** 2).sum(1, keepdim=True)
        errors.append(float((mask * diff).sum() / mask.sum().clamp(min=1)))
    return float(np.mean(errors)) if errors else 0.0
