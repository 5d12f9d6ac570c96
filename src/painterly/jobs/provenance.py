"""One provenance record for every job: what went in, with which settings, what came out.

The same fields for every command — ``command``, ``inputs`` (each with its path and the
sha256 of its bytes), ``output``, ``settings``, ``seed``, ``versions``, ``seconds``,
``losses`` — printed by ``--json`` and written into every PNG painterly makes (text chunks:
``painterly-record`` holds the whole record; ``painterly``, ``painterly-seed`` and
``painterly-versions`` its settings, seed and versions, as before; the picture's copy leaves
out where it was written and how long it took), so that a picture says how to make it again.
"""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from .._version import __version__


def versions() -> dict[str, str]:
    import torch
    return {"painterly": __version__, "torch": str(torch.__version__),
            "python": platform.python_version()}


def fingerprint(source: str) -> dict[str, Optional[str]]:
    """An input's path and the sha256 of its bytes (None for stdin, which is read once)."""
    digest = None
    if source != "-" and Path(source).is_file():
        h = hashlib.sha256()
        with open(source, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
    return {"path": str(source), "sha256": digest}


def record(command: str, inputs: dict[str, Any], output: Path | str, config,
           seconds: float, losses: dict[str, float], **extra) -> dict[str, Any]:
    """The record of one job. ``inputs`` maps roles (content, styles, picture, guide) to
    paths or lists of paths; each becomes a fingerprint."""
    settings = asdict(config)
    return {"command": command, "inputs": {role: _fingerprints(paths) for role, paths in
                                           inputs.items() if paths is not None},
            "output": str(output), "settings": settings,
            # fast has no randomness: the same inputs give the same bytes, so no seed.
            "seed": settings.get("seed"), "versions": versions(),
            "seconds": round(seconds, 2), "losses": losses, **extra}


def _fingerprints(paths):
    if isinstance(paths, (list, tuple)):
        return [fingerprint(str(p)) for p in paths]
    return fingerprint(str(paths))


# What a picture's own record leaves out: where it was written and how long it took. The
# same inputs, settings and seed then give the same bytes (RELIABILITY.md JOB-06).
VOLATILE = ("output", "seconds", "stages", "outputs")


def png_text(rec: dict[str, Any]) -> dict[str, str]:
    """The PNG text chunks of a record."""
    steady = {k: v for k, v in rec.items() if k not in VOLATILE}
    return {"Software": f"painterly {__version__}", "painterly": json.dumps(rec["settings"]),
            "painterly-seed": str(rec["seed"]), "painterly-versions": json.dumps(rec["versions"]),
            "painterly-record": json.dumps(steady)}


def read_record(text: dict[str, str]) -> Optional[dict[str, Any]]:
    """The record in a picture's PNG text, if painterly made it (for "use these settings
    again" in a front end)."""
    raw = text.get("painterly-record")
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None
