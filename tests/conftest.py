from pathlib import Path

import pytest
import torch

from painterly import image as I
from painterly.fast import TrainConfig, train

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
WEIGHTS = SHARED / "weights"
CONTENT = SHARED / "images" / "content"
STYLE = SHARED / "images" / "style"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Keep the closing "N passed" line visible however the suite is started: pytest itself
    drops it at -qq (e.g. a -q on the command line on top of one in the config)."""
    if config.get_verbosity() >= -1:
        return  # pytest prints its own
    counts = {k: len(v) for k, v in terminalreporter.stats.items()
              if k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed") and v}
    summary = ", ".join(f"{n} {k}" for k, n in counts.items()) or "no tests ran"
    terminalreporter.write_line(f"{summary} (exit status {int(exitstatus)})")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's cache or weights folder unless it asks for them."""
    monkeypatch.setenv("PAINTERLY_CACHE", str(tmp_path / "cache"))
    # beside tmp_path, not in it: tests that list their folder see only their own files
    monkeypatch.setenv("PAINTERLY_STATS_CACHE", str(tmp_path.with_name(tmp_path.name + "-stats")))
    monkeypatch.setenv("PAINTERLY_OFFLINE", "1")
    monkeypatch.delenv("PAINTERLY_WEIGHTS_DIR", raising=False)
    torch.manual_seed(0)


@pytest.fixture
def real_weights(monkeypatch):
    if not (WEIGHTS / "vgg16-caffe-features.safetensors").is_file():
        pytest.skip("../shared/weights is not beside the project")
    monkeypatch.setenv("PAINTERLY_WEIGHTS_DIR", str(WEIGHTS))
    return WEIGHTS


def default_sigint() -> None:
    """preexec_fn for a child the test will interrupt: SIGINT back to its default.

    Started from a background job or under nohup, the test runner inherits an ignored SIGINT
    and its children would too; painterly rightly keeps an ignored SIGINT ignored, so the
    child the test sends Ctrl-C to must be given the default first."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def picture(h=48, w=64, seed=0) -> torch.Tensor:
    """A smooth synthetic RGB picture [1, 3, h, w] in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=gen)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear",
                                           align_corners=False).clamp(0, 1)


def stripes(h=48, w=64) -> torch.Tensor:
    """A high-contrast striped 'painting'."""
    x = torch.arange(w).float()
    y = torch.arange(h).float()[:, None]
    r = (torch.sin(x / 2.0 + y / 3.0) > 0).float().expand(h, w)
    g = (torch.sin(y / 1.5) > 0).float().expand(h, w) * 0.6
    b = 1 - r
    return torch.stack([r, g, b]).unsqueeze(0)


# ---- tiny training corpora and a tiny decoder, shared by the fast-transfer tests

@pytest.fixture(scope="session")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    for kind, make in (("photos", picture), ("paintings", lambda h, w, seed: stripes(h, w))):
        (root / kind).mkdir()
        for i in range(4):
            I.save_image(make(48, 56, seed=i), root / kind / f"{i}.jpg")
    (root / "photos" / "broken.jpg").write_bytes(b"not a jpeg")  # skipped, not fatal
    return root


def _train_cfg(corpora, out, **kw):
    base = dict(photos=str(corpora / "photos"), paintings=str(corpora / "paintings"),
                out=str(out), steps=4, batch=2, crop=32, model="tiny", decoder_scale=1 / 16,
                preview_every=2, precision="fp32")
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="session")
def tiny_decoder(corpora, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    return train(_train_cfg(corpora, out, steps=30, lr=2e-3))
