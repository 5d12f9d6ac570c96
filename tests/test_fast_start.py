"""A one-off `painterly fast` imports only what it paints with (issue #18: whole-process time)."""
import subprocess
import sys

from painterly.cli import build_parser

NOT_FOR_FAST = ("painterly.inspect", "painterly.deepdream", "painterly.jobs.clip",
                "painterly.transfer", "painterly.temporal", "painterly.cli.dream",
                "painterly.cli.inspect", "painterly.cli.style")


def test_a_fast_run_imports_only_what_it_paints_with():
    code = ("import sys; from painterly.cli.main import build_parser; "
            "build_parser(['--debug', 'fast', 'a.jpg', 'b.jpg']); import painterly.jobs.fast; "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert "painterly.fast.stylizer" in loaded and "painterly.cli.fast" in loaded
    assert not loaded & set(NOT_FOR_FAST), loaded & set(NOT_FOR_FAST)


def test_the_whole_parser_still_has_every_command():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"style", "fast", "styles", "train-fast", "distill-fast", "dream", "inspect",
            "weights", "web"} <= set(commands)
    only_fast = build_parser(["fast", "a.jpg", "b.jpg"])._subparsers._group_actions[0].choices
    assert set(only_fast) == {"fast"}


def test_the_command_imports_torch_with_the_collector_paused_then_freezes_it():
    # `import painterly` must not import torch: the entry point pauses the collector first.
    code = ("import gc, sys; import painterly; assert 'torch' not in sys.modules; "
            "from painterly import launch; sys.argv = ['painterly', 'styles']\n"
            "try:\n    launch.entry()\nexcept SystemExit as exc:\n    code = exc.code\n"
            "print(code, gc.isenabled(), gc.get_freeze_count() > 10000, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()[-1]   # after the list of styles
    assert out.split() == ["0", "True", "True", "True"]


def test_python_m_painterly_is_the_command():
    run = subprocess.run([sys.executable, "-m", "painterly", "fast", "missing.jpg",
                          "--style", "starry-night", "-o", "out.png"],
                         capture_output=True, text=True)
    assert run.returncode == 3 and run.stderr.startswith("painterly: error: no such file")
