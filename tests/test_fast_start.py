"""A one-off `painterly fast` imports only what it paints with (issue #18: whole-process time)."""
import inspect
import platform
import subprocess
import sys

import pytest

from painterly import launch

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
    # The command ends with os._exit, after the exit handlers: one of them reports here.
    code = ("import atexit, gc, sys; import painterly; assert 'torch' not in sys.modules; "
            "from painterly import launch; sys.argv = ['painterly', 'styles']\n"
            "atexit.register(lambda: print(gc.isenabled(), gc.get_freeze_count() > 10000, "
            "'torch' in sys.modules))\n"
            "launch.entry()\n"
            "print('not reached: the command exits')")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].split() == ["True", "True", "True"]  # after the styles


def test_the_command_exits_with_its_status_and_its_output_flushed(tmp_path):
    # A non-zero status, stderr written, and an exit handler that writes a file: all there
    # although the interpreter is not torn down.
    marker = tmp_path / "handler-ran"
    code = ("import atexit, pathlib, sys; from painterly import launch\n"
            f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
            "sys.argv = ['painterly', 'fast', 'missing.jpg', '--style', 'starry-night']\n"
            "launch.entry()")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 3 and run.stderr.startswith("painterly: error: no such file")
    assert marker.read_text() == "yes"


def test_a_program_calling_the_cli_keeps_its_process():
    # painterly.cli.entry (what a host program may call) raises SystemExit as before.
    code = ("import sys; from painterly.cli import entry; sys.argv = ['painterly', 'styles']\n"
            "try:\n    entry()\nexcept SystemExit as exc:\n    print('still here', exc.code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()[-1]
    assert out == "still here 0"


def test_python_m_painterly_is_the_command():
    run = subprocess.run([sys.executable, "-m", "painterly", "fast", "missing.jpg",
                          "--style", "starry-night", "-o", "out.png"],
                         capture_output=True, text=True)
    assert run.returncode == 3 and run.stderr.startswith("painterly: error: no such file")


GLIBC = sys.platform.startswith("linux") and "glibc" in " ".join(platform.libc_ver())


@pytest.mark.skipif(not GLIBC, reason="malloc's settings are glibc's")
def test_the_command_keeps_freed_memory_for_the_next_map():
    # After reuse_freed_memory (what the command does first), a 96 MiB map comes from
    # malloc's heap, not a fresh mapping, and once freed stays in the heap for the next
    # (mallinfo2: hblkhd is mapped bytes, fordblks the heap's free bytes). By default, and
    # in a program that only imports painterly and paints, glibc maps such a block and
    # unmaps it when it is freed. release_freed_memory (the web app's, when its queue
    # empties) gives the kept memory back.
    assert "reuse_freed_memory()" in inspect.getsource(launch.entry)
    code = ("import ctypes, sys, torch; from painterly import memory\n"
            "class Info(ctypes.Structure):\n"
            "    _fields_ = [(n, ctypes.c_size_t) for n in ('arena ordblks smblks hblks hblkhd '\n"
            "                'usmblks fsmblks uordblks fordblks keepcost').split()]\n"
            "info = ctypes.CDLL(None).mallinfo2; info.restype = Info\n"
            "if sys.argv[1] in ('command', 'released'): assert memory.reuse_freed_memory()\n"
            "if sys.argv[1] == 'library':\n"
            "    import painterly.cli, painterly.fast\n"
            "    from painterly.nets.decoder import build_decoder\n"
            "    painterly.fast.FastStylizer(painterly.fast.FastConfig(model='tiny', size=0),\n"
            "        decoder=build_decoder(32, scale=1 / 16, input_scale=1.0))(\n"
            "        torch.rand(1, 3, 80, 64), torch.rand(1, 3, 64, 64))\n"
            "rss = lambda: memory.available_bytes()[1] >> 20\n"
            "x = torch.ones(24 << 20); mapped, held = info().hblkhd, rss(); del x\n"
            "if sys.argv[1] == 'released': assert memory.release_freed_memory()\n"
            "print(mapped >> 20, info().fordblks >> 20, held - rss())")
    for how in ("command", "default", "library", "released"):
        run = subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        mapped, kept, returned = map(int, run.stdout.split())  # MiB; returned: RSS drop
        if how == "command":
            assert mapped < 96 and kept >= 96 and returned < 16, (how, mapped, kept, returned)
        elif how == "released":  # trimmed off the heap's top, or its pages handed back inside
            assert mapped < 96 and returned >= 80, (how, mapped, returned)
        else:
            assert mapped >= 96 and kept < 96 and returned >= 80, (how, mapped, kept, returned)
