"""painterly's CPU benchmark: per-evaluation speed, and end-to-end speed against quality.

    python benchmarks/bench.py                # full run (~35 min on 2 cores), writes docs/performance.md
    python benchmarks/bench.py --quick --out /tmp/perf.md   # smoke test on the tiny net (seconds)

Needs the real VGG16 weights (PAINTERLY_WEIGHTS_DIR=../shared/weights) for the full run, and
matplotlib (pip install -e ".[bench]") for the plot. Figures are medians; every end-to-end run
happens in this one process, one after another, so the ratios compare like with like.
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

import painterly
from painterly import image as I
from painterly.features import STYLE_LAYERS, NetSpec, build_extractor
from painterly.memory import reuse_freed_memory
from painterly.losses import gram_matrix
from painterly.nets import get_net, layer_index
from painterly.quality import distances, reference_extractor
from painterly.transfer import PRESETS, TransferConfig, starts_from_fast

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
CONTENT = SHARED / "content" / "tubingen.jpg"
STYLE = SHARED / "style" / "starry_night.jpg"


@functools.lru_cache(maxsize=1)
def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    """The photo and the painting, decoded once (distances are measured many times a run)."""
    return I.load_image(CONTENT), I.load_image(STYLE)


# ------------------------------------------------------------------ machine facts


def peak_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """The machine's practical matmul peak (GFLOP/s) for a dtype."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    return 2 * n ** 3 / _median_time(lambda: a @ b, repeats) / 1e9


def vgg_gflop(height: int, width: int, deepest: str = "relu5_1") -> float:
    """GFLOP of VGG16 forward up to `deepest` plus the backward pass to the input (≈ 2×)."""
    flops, c_in = 0.0, 3
    for layer in get_net("vgg16").layers[: layer_index("vgg16", deepest) + 1]:
        if layer.kind == "conv":
            h, w = height // layer.stride, width // layer.stride
            flops += 2 * c_in * layer.channels * 9 * h * w
            c_in = layer.channels
    return 2 * flops / 1e9


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ------------------------------------------------------------------ per evaluation


def eval_time(model: str, precision: str, channels_last: bool, size: tuple[int, int],
              repeats: int) -> float:
    """Median seconds of VGG forward to relu5_1 + backward to the input, one picture."""
    ext = build_extractor(NetSpec(model), ("relu5_1",), torch.device("cpu"), precision)
    if not channels_last:
        ext.net.to(memory_format=torch.contiguous_format)
    x = torch.rand(1, 3, *size)

    def once():
        y = x.clone().requires_grad_(True)
        ext(y)["relu5_1"].sum().backward()
    once()
    return _median_time(once, repeats)


def loss_eval_time(model: str, size: int, repeats: int) -> float:
    """Median seconds of one evaluation of painterly's full loss (default settings)."""
    from painterly.transfer import make_loss
    cfg = TransferConfig(model=model)
    ext = build_extractor(NetSpec(model), cfg.content_layers + cfg.style_layers,
                          torch.device("cpu"), "auto")
    photo = I.resize(_pair()[0], long_side=size)
    loss_fn = make_loss(ext, cfg, photo, [_pair()[1]], [1.0])

    def once():
        x = photo.clone().requires_grad_(True)
        loss_fn(x)[0].backward()
    once()
    return _median_time(once, repeats)


# ------------------------------------------------------------------ end to end


@dataclass
class Trace:
    """Distances measured along a run, on a clock that excludes the measuring itself."""

    name: str
    seconds: float = 0.0
    final: dict = field(default_factory=dict)
    points: list = field(default_factory=list)  # (seconds, style distance, content distance)


class _Tracer:
    def __init__(self, trace: Trace, ref, final_size: tuple[int, int]):
        self.trace, self.ref, self.size = trace, ref, final_size
        self.started, self.measuring = time.perf_counter(), 0.0

    def __call__(self, event) -> None:
        if event.image is None:
            return
        t0 = time.perf_counter()
        picture = I.resize(event.image, size=self.size)  # compare coarse scales at full size
        d = distances(picture, *_pair(), self.ref)
        self.trace.points.append((t0 - self.started - self.measuring, d["style"], d["content"]))
        self.measuring += time.perf_counter() - t0

    def clock(self) -> float:
        return time.perf_counter() - self.started - self.measuring


def run_preset(name: str, cfg: TransferConfig, ref, trace_every: int) -> tuple[Trace, torch.Tensor]:
    trace = Trace(name)
    final_size = tuple(I.resize(_pair()[0], long_side=cfg.size).shape[-2:])
    tracer = _Tracer(trace, ref, final_size)
    start = None
    if starts_from_fast(cfg):  # quick: the fast network's picture, timed with the run
        from painterly.fast import FastConfig, fast_stylize
        start = fast_stylize(I.resize(_pair()[0], long_side=cfg.size), _pair()[1],
                             FastConfig(size=0))
    out = painterly.stylize(_pair()[0], [_pair()[1]], cfg, callback=tracer,
                            preview_every=trace_every, init_picture=start)
    trace.seconds = tracer.clock()
    trace.final = distances(out, *_pair(), ref)
    return trace, out


def run_tutorial_baseline(model: str, size: int, steps: int, ref,
                          trace_every: int) -> tuple[Trace, torch.Tensor]:
    """The TensorFlow tutorial's recipe rebuilt with painterly's parts.

    Single scale, Adam(lr 0.02, β1 0.99, ε 0.1), content relu5_2 ×1e4, style relu1_1…relu5_1
    ×1e-2 with the tutorial's unnormalised mean squared errors, TV ×30 (sum of absolute
    differences, as tf.image.total_variation), init from the content, fp32, clip to [0, 1].
    """
    ext = build_extractor(NetSpec(model), ("relu5_2",) + STYLE_LAYERS, torch.device("cpu"), "fp32")
    photo = I.resize(_pair()[0], long_side=size)
    painting = I.resize(_pair()[1], long_side=size)
    with torch.no_grad():
        content_target = ext(photo)["relu5_2"]
        style_targets = {k: gram_matrix(v) for k, v in ext(painting).items() if k in STYLE_LAYERS}
    trace = Trace("tutorial baseline")
    tracer = _Tracer(trace, ref, tuple(photo.shape[-2:]))
    x = photo.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.02, betas=(0.99, 0.999), eps=0.1)
    for step in range(1, steps + 1):
        opt.zero_grad()
        feats = ext(x)
        style = sum(((gram_matrix(feats[k]) - style_targets[k]) ** 2).mean()
                    for k in STYLE_LAYERS) / len(STYLE_LAYERS)
        content = ((feats["relu5_2"] - content_target) ** 2).mean()
        tv = (x[..., 1:, :] - x[..., :-1, :]).abs().sum() + (x[..., 1:] - x[..., :-1]).abs().sum()
        (1e-2 * style + 1e4 * content + 30 * tv).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        if step % trace_every == 0 or step == steps:
            tracer(painterly.Progress("baseline", "", step, steps, image=x.detach()))
    trace.seconds = tracer.clock()
    out = x.detach()
    trace.final = distances(out, *_pair(), ref)
    return trace, out


# ------------------------------------------------------------------ report


def _machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [f"- CPU: {cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny net, tiny sizes: a smoke test")
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--baseline-steps", type=int, default=1000)
    args = parser.parse_args(argv)
    reuse_freed_memory()  # as the painterly command does: freed maps kept for the next ones
    quick = args.quick
    model = "tiny" if quick else "vgg16"
    out_md = Path(args.out)
    lines = ["# painterly performance\n", "Generated by `python benchmarks/bench.py"
             f"{' --quick' if quick else ''}` on this machine.\n", *_machine()]
    lines += _per_eval_section(model, quick)
    lines += _end_to_end_section(model, quick, args, out_md)
    lines += _dream_section(model, quick)
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text("\n".join(lines) + "\n")
    print(f"wrote {out_md}", file=sys.stderr)
    return 0


def _per_eval_section(model: str, quick: bool) -> list[str]:
    repeats = 2 if quick else 5
    peak32, peak16 = peak_gflops(torch.float32, 256 if quick else 2048), \
        peak_gflops(torch.bfloat16, 256 if quick else 2048)
    lines = [f"- measured matmul peak: fp32 {peak32:.0f} GFLOP/s, bf16 {peak16:.0f} GFLOP/s\n",
             "## Per evaluation: VGG16 to relu5_1, forward + backward to the input\n",
             "| size | variant | seconds (median) | GFLOP/s | % of that dtype's peak |",
             "| --- | --- | --- | --- | --- |"]
    sizes = [(24, 32), (48, 64)] if quick else [(192, 256), (384, 512)]
    for size in sizes:
        gflop = vgg_gflop(*size)
        for precision, cl in (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)):
            t = eval_time(model, precision, cl, size, repeats)
            peak = peak16 if precision == "bf16" else peak32
            name = precision + (" channels_last" if cl else "")
            lines.append(f"| {size[1]}×{size[0]} | {name} | {t:.3f} | {gflop / t:.0f} | "
                         f"{100 * gflop / t / peak:.0f}% |")
    lines.append(f"\nFLOP counts: {vgg_gflop(384, 512):.0f} GFLOP per evaluation at 512×384. "
                 "The peak is a 2048² matmul's; oneDNN's convolutions can beat it (over 100%).\n")
    lines += ["Full painterly loss (content + 5 Gram layers + TV, default precision):\n",
              "| size | seconds (median) |", "| --- | --- |"]
    for side in ((32, 64) if quick else (256, 512)):
        lines.append(f"| {side} long side | {loss_eval_time(model, side, repeats):.3f} |")
    return lines + [""]


def _end_to_end_section(model: str, quick: bool, args, out_md: Path) -> list[str]:
    ref = reference_extractor(model)
    size = 64 if quick else 512
    trace_every = 3 if quick else 10
    runs: list[tuple[Trace, torch.Tensor]] = []
    for preset in PRESETS:
        cfg = TransferConfig(model=model, size=size, min_size=45 if quick else 256, quality=preset,
                             iterations=(4,) if quick else ())
        runs.append(run_preset(preset, cfg, ref, trace_every))
        print(f"{preset}: {runs[-1][0].seconds:.1f} s {runs[-1][0].final}", file=sys.stderr)
    if not args.skip_baseline:
        steps = 10 if quick else args.baseline_steps
        runs.append(run_tutorial_baseline(model, size, steps, ref, 2 if quick else 50))
        print(f"baseline: {runs[-1][0].seconds:.1f} s {runs[-1][0].final}", file=sys.stderr)
    base = runs[-1][0] if not args.skip_baseline else None
    lines = [f"## End to end: tubingen × starry_night at {size} px\n",
             "Quality as defined in the CPU-speed issue: style distance = mean over relu1_1…"
             "relu5_1 of ‖G(x)−G(s)‖/‖G(s)‖, content distance = ‖F(x)−F(c)‖/‖F(c)‖ at relu4_2, "
             "both on VGG16 (Caffe) features in fp32. Lower is closer.\n",
             "| run | seconds | style distance | content distance | speed-up vs baseline |",
             "| --- | --- | --- | --- | --- |"]
    for trace, _ in runs:
        ratio = f"{base.seconds / trace.seconds:.1f}×" if base else "—"
        lines.append(f"| {trace.name} | {trace.seconds:.1f} | {trace.final['style']:.3f} | "
                     f"{trace.final['content']:.3f} | {ratio} |")
    lines += _pictures_and_plot([t for t, _ in runs], [o for _, o in runs], out_md.parent, quick)
    return lines


def _pictures_and_plot(traces, outputs, folder: Path, quick: bool) -> list[str]:
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = ["", "Schedules (iterations per scale, 256 → 362 → 512 px): "
             + ", ".join(f"{k} {v}" for k, v in PRESETS.items()) + ".", ""]
    for trace, out in zip(traces, outputs):
        name = f"perf_{trace.name.replace(' ', '_')}{'_quick' if quick else ''}.jpg"
        I.save_image(out, images / name)
        lines.append(f"![{trace.name}](images/{name})")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return lines + ["", "(plot skipped: pip install -e '.[bench]' for matplotlib)"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for trace in traces:
        if trace.points:
            t, style, _ = zip(*trace.points)
            ax.plot(t, style, label=trace.name)
    ax.set_xscale("log")
    ax.set_xlabel("wall time, s (log)")
    ax.set_ylabel("style distance")
    ax.legend()
    ax.grid(alpha=0.3)
    plot = images / f"perf_quality{'_quick' if quick else ''}.png"
    fig.savefig(plot, dpi=100, bbox_inches="tight")
    return lines + ["", "Style distance against wall time (coarse scales measured after "
                    "upsampling to the final size):", "", f"![quality vs time](images/{plot.name})"]


def _dream_section(model: str, quick: bool) -> list[str]:
    """DeepDream with its defaults on the photo at 1024 px (the photo's own size)."""
    size = 64 if quick else 1024
    cfg = painterly.DreamConfig(model=model, size=size)
    start = time.perf_counter()
    out = painterly.dream(_pair()[0], cfg)
    seconds = time.perf_counter() - start
    print(f"dream: {seconds:.1f} s", file=sys.stderr)
    return ["", "## DeepDream defaults\n", "| picture | size | seconds |", "| --- | --- | --- |",
            f"| tubingen | {out.shape[-1]}×{out.shape[-2]} | {seconds:.1f} |", ""]


if __name__ == "__main__":
    sys.exit(main())
