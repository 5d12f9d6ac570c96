"""painterly's exceptions. Each carries the exit code the CLI uses and a hint for the user.

Exit codes (documented in the README):
  0 success, 2 usage error, 3 bad input picture, 4 picture too large / won't fit,
  5 weights problem, 6 download problem, 7 output problem, 8 optimisation diverged,
  130 interrupted by SIGINT (Ctrl-C), 143 terminated by SIGTERM.

Messages speak of settings, not of a front end's controls: a setting is written in backquotes
with its config field's name (``pass `overwrite` or choose another path``). Each front end
renders them as its users know them (:func:`render_settings`): the command line as flags
(``--overwrite``), a web page as the label of its control.
"""
from __future__ import annotations

import re
from typing import Callable

SETTING = re.compile(r"`([a-z][a-z0-9_]*)`")


def render_settings(text: str, name_of: Callable[[str], str]) -> str:
    """``text`` with every `setting` replaced by ``name_of(setting)``."""
    return SETTING.sub(lambda m: name_of(m.group(1)), text)


class PainterlyError(Exception):
    """Base class: a user-facing error with an exit code and a hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class ConfigError(PainterlyError, ValueError):
    """An option has a value outside its valid range."""

    exit_code = 2


class CheckpointError(ConfigError):
    """A checkpoint can't be read, or was made for other inputs or settings (a usage error)."""


class InputImageError(PainterlyError):
    """A picture can't be read: missing, not an image, truncated, too small."""

    exit_code = 3


class ImageTooLargeError(PainterlyError):
    """A picture (or the work asked for) is larger than the limits allow."""

    exit_code = 4


class WeightsError(PainterlyError):
    """Weights are missing, corrupt, unsafe or don't match the architecture."""

    exit_code = 5


class DownloadError(PainterlyError):
    """A weights download failed or its hash did not match."""

    exit_code = 6


class OutputError(PainterlyError):
    """The output can't be written (exists, same as an input, no space, no permission)."""

    exit_code = 7


class DivergedError(PainterlyError):
    """The optimisation produced NaN/Inf; `last_good` holds the last finite picture."""

    exit_code = 8

    def __init__(self, message: str, hint: str = "", last_good=None):
        super().__init__(message, hint)
        self.last_good = last_good


class Cancelled(PainterlyError):
    """The run was cancelled (Ctrl-C, SIGTERM or a cancel event); `partial` holds the picture so far.

    ``state`` is what the optimisation loop needs to continue (iteration, optimiser state);
    ``checkpoint`` is the whole resumable state where the algorithm supports resuming
    (``painterly.transfer.save_checkpoint`` writes it, ``stylize(resume_from=...)`` continues).
    """

    exit_code = 130

    def __init__(self, message: str = "cancelled", hint: str = "", partial=None, state=None,
                 checkpoint=None, saved_checkpoint=None):
        super().__init__(message, hint)
        self.partial = partial
        self.state = state
        self.checkpoint = checkpoint
        self.saved_checkpoint = saved_checkpoint  # the file it was written to, once it is


def check_option(ok: bool, name: str, value, valid: str) -> None:
    """Raise ConfigError naming the setting, its value and what is valid, unless ``ok``."""
    if not ok:
        raise ConfigError(f"invalid {name}: {value!r}", f"expected {valid}")
