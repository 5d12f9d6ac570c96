import threading

import pytest
import torch

import painterly
from painterly.errors import Cancelled, ConfigError, DivergedError
from painterly.transfer import TransferConfig, iteration_schedule, scale_sizes, stylize

from conftest import picture, stripes

TINY = dict(model="tiny", size=64, min_size=45, iterations=(6,), precision="fp32")


def test_scale_sizes_grow_by_sqrt2_to_size():
    assert scale_sizes(512, 256) == [256, 362, 512]
    assert scale_sizes(300, 256) == [300]
    assert scale_sizes(1024, 256)[0] == 256 and scale_sizes(1024, 256)[-1] == 1024


def test_iteration_schedule_forms():
    assert iteration_schedule(TransferConfig(iterations=(7,)), 3) == [7, 7, 7]
    assert iteration_schedule(TransferConfig(iterations=(5, 4, 3)), 3) == [5, 4, 3]
    auto = iteration_schedule(TransferConfig(), 3)
    assert len(auto) == 3 and auto[0] >= auto[-1]
    with pytest.raises(ConfigError, match="one per scale"):
        iteration_schedule(TransferConfig(iterations=(5, 4)), 3)


def test_output_shape_range_and_progress_rises_to_total():
    events = []
    out = stylize(picture(48, 64), [stripes()], TransferConfig(**TINY), callback=events.append)
    assert out.shape == (1, 3, 48, 64) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    steps = [e.step for e in events]
    assert steps == list(range(1, len(steps) + 1)) and steps[-1] == events[-1].total == 12
    assert {e.stage for e in events} == {"scale 1/2", "scale 2/2"}
    assert {"content", "style", "tv", "total"} <= set(events[-1].losses)


def test_style_loss_falls():
    events = []
    stylize(picture(), [stripes()], TransferConfig(**dict(TINY, min_size=64, iterations=(30,))),
            callback=events.append)
    assert events[-1].losses["style"] < 0.5 * events[0].losses["style"]


def test_adam_also_lowers_the_loss():
    events = []
    stylize(picture(), [stripes()], TransferConfig(**dict(TINY, min_size=64, iterations=(30,),
                                                         optimizer="adam", lr=0.05)),
            callback=events.append)
    assert events[-1].losses["total"] < events[0].losses["total"]


def test_same_seed_same_bytes_noise_init():
    cfg = TransferConfig(**dict(TINY, init="noise", seed=3))
    a = stylize(picture(), [stripes()], cfg)
    b = stylize(picture(), [stripes()], cfg)
    c = stylize(picture(), [stripes()], TransferConfig(**dict(TINY, init="noise", seed=4)))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_several_styles_with_blend_weights_and_validation():
    cfg = TransferConfig(**dict(TINY, style_weights=(0.7, 0.3)))
    out = stylize(picture(), [stripes(), picture(seed=5)], cfg)
    assert out.shape == (1, 3, 48, 64)
    only_first = stylize(picture(), [stripes(), picture(seed=5)],
                         TransferConfig(**dict(TINY, style_weights=(1, 0))))
    assert torch.allclose(only_first, stylize(picture(), [stripes()], TransferConfig(**TINY)),
                          atol=1e-4)
    with pytest.raises(ConfigError, match="one weight per style"):
        stylize(picture(), [stripes()], cfg)


def test_preserve_color_luminance_keeps_photo_colours():
    photo = picture()
    out = stylize(photo, [stripes()], TransferConfig(**dict(TINY, preserve_color="luminance")))
    from painterly.image import rgb_to_yiq
    chroma_error = (rgb_to_yiq(out)[:, 1:] - rgb_to_yiq(photo)[:, 1:]).abs().mean()
    assert chroma_error < 0.02  # only out-of-gamut pixels, clamped, differ
    hist = stylize(photo, [stripes()], TransferConfig(**dict(TINY, preserve_color="histogram")))
    assert not torch.allclose(hist, out)


def test_init_from_file(tmp_path):
    path = painterly.save_image(picture(seed=9), tmp_path / "init.png")
    out = stylize(picture(), [stripes()], TransferConfig(**dict(TINY, init=str(path),
                                                               iterations=(0,))))
    # zero iterations: the start picture, only resampled down to the coarse scale and back
    assert (out - picture(seed=9)).abs().mean() < 0.01
    assert (out - picture()).abs().mean() > 0.05


def test_cancel_stops_with_the_picture_so_far():
    cancel = threading.Event()

    def cb(event):
        if event.step == 3:
            cancel.set()
    with pytest.raises(Cancelled) as err:
        stylize(picture(), [stripes()], TransferConfig(**TINY), callback=cb, cancel=cancel)
    assert err.value.partial.shape == (1, 3, 34, 45)  # still at the coarse scale


def test_nan_guard_returns_last_good_picture(monkeypatch):
    import painterly.transfer as T
    real = T.tv_loss
    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        return real(x) * (float("nan") if calls["n"] > 3 else 1.0)
    monkeypatch.setattr(T, "tv_loss", flaky)
    with pytest.raises(DivergedError) as err:
        stylize(picture(), [stripes()], TransferConfig(**TINY))
    assert torch.isfinite(err.value.last_good).all() and err.value.exit_code == 8


@pytest.mark.parametrize("bad", [dict(size=8), dict(style_weight=-1), dict(optimizer="sgd"),
                                 dict(preserve_color="yes"), dict(style_weights=(0, 0)),
                                 dict(style_layer_weights=(1.0,))])
def test_invalid_configs_name_the_parameter(bad):
    with pytest.raises(ConfigError) as err:
        TransferConfig(**bad)
    assert next(iter(bad)) in str(err.value)


def _quartic():
    """A smooth, non-quadratic loss over 50 values, and its closure for an optimiser."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(50, 50, generator=gen)
    a = a @ a.T / 50 + 0.1 * torch.eye(50)
    b = torch.randn(50, generator=gen)

    def closure_for(x, opt):
        def closure():
            opt.zero_grad()
            loss = 0.5 * x @ a @ x - b @ x + 0.1 * (x ** 4).sum()
            loss.backward()
            return loss
        return closure
    return closure_for


def _torch_lbfgs(x):
    return torch.optim.LBFGS([x], lr=1.0, max_iter=1, history_size=20, tolerance_grad=0.0,
                             tolerance_change=0.0)


def test_own_lbfgs_takes_torchs_steps_after_the_first():
    from painterly.optim import LBFGS
    closure_for = _quartic()
    mine, theirs = torch.zeros(50, requires_grad=True), torch.zeros(50, requires_grad=True)
    own, reference = LBFGS(mine), _torch_lbfgs(theirs)
    own._first_step = lambda g: min(1.0, 1.0 / float(g.abs().sum()))  # torch's first step
    for _ in range(30):  # past the 20 pairs of history, so old pairs are dropped too
        own.step(closure_for(mine, own))
        reference.step(closure_for(theirs, reference))
        assert torch.equal(mine, theirs)
    assert float(closure_for(mine, own)()) < -22  # and it did minimise


def test_own_lbfgs_resumes_from_torchs_saved_state():
    """A checkpoint written by earlier versions holds torch's optimiser state."""
    import copy

    from painterly.optim import LBFGS
    closure_for = _quartic()
    theirs = torch.zeros(50, requires_grad=True)
    reference = _torch_lbfgs(theirs)
    for _ in range(5):
        reference.step(closure_for(theirs, reference))
    mine = theirs.detach().clone().requires_grad_(True)
    own = LBFGS(mine)
    own.load_state_dict(copy.deepcopy(reference.state_dict()))
    for _ in range(5):
        own.step(closure_for(mine, own))
        reference.step(closure_for(theirs, reference))
    assert torch.equal(mine, theirs)


def test_optimising_a_picture_does_not_import_torchs_compiler():
    import subprocess
    import sys
    code = ("import sys, torch\n"
            "from painterly.optim import optimize\n"
            "from painterly.progress import Tracker\n"
            "loss_fn = lambda x: (((x - 0.5) ** 2).sum(), {})\n"
            "optimize(torch.zeros(1, 3, 8, 8), loss_fn, 3, Tracker('t', 3), 's')\n"
            "print('torch._dynamo' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_lbfgs_first_step_moves_the_pixels_by_first_step_rms_then_lbfgs_takes_over():
    from painterly.optim import FIRST_STEP_RMS, optimize
    from painterly.progress import Tracker
    target = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    start = torch.full_like(target, 0.5)

    def loss_fn(x):
        return ((x - target) ** 2).sum(), {}
    one = optimize(start, loss_fn, 1, Tracker("t", 1), "s")
    step = one - start
    # torch's own first step (lr / ‖g‖₁ over 36,864 values) would move a pixel by ~1e-5
    assert float(step.pow(2).mean().sqrt()) == pytest.approx(FIRST_STEP_RMS, rel=1e-3)
    assert torch.allclose(step / step.norm(), (target - start) / (target - start).norm(),
                          atol=1e-4)  # along −g
    # on a quadratic L-BFGS then finds the minimum within a few steps
    five = optimize(start, loss_fn, 5, Tracker("t", 5), "s")
    assert float((five - target).abs().max()) < 1e-3
