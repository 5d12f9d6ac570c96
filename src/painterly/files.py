"""Writing files so that nothing the user had is lost: atomic replacement, quiet removal."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, IO

from .errors import OutputError


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through ``write(file)`` to a temp file beside ``path``, then rename it over.

    Readers see the old file or the whole new one, never a part; on any failure (or
    KeyboardInterrupt) the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            remove_quietly(tmp)
        raise write_error(path, exc) from exc
    except BaseException:
        if tmp is not None:
            remove_quietly(tmp)
        raise


def write_error(path: Path, exc: OSError) -> OutputError:
    """The user's sentence for a failed write."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"no space left on device while writing {path}",
                           "free some space or choose another folder")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}",
                       "check free space and permissions")


def umask() -> int:
    """The process's umask (read without changing it for longer than the call)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_quietly(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
