"""The top-patches job: a folder or tar of pictures -> an atlas folder (Zeiler & Fergus).

The atlas folder holds, per layer, ``LAYER.png`` (the contact sheet), ``LAYER/channel_NNNN.png``
(each channel's grid) and ``LAYER.html``; ``index.html``, ``index.json``, and ``.state.pt``
(the scan's top-k tables, to continue an interrupted run).

Output rules, decided here: the output is a folder (an existing file, or a name ending like a
picture, is refused). An existing folder that is not empty is refused unless ``overwrite``
(then files of the same names are replaced, others left) — except when it holds the unfinished
scan of the same settings over the same pictures: then the run continues it, with or without
``overwrite``, so that rerunning the same command after Ctrl-C always continues.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .. import image as I
from ..errors import Cancelled, OutputError
from ..files import atomic_write
from ..inspect.patches import (Pictures, TopPatches, TopPatchesConfig, channel_counts,
                               channel_grid, collect_patches, contact_sheet, extractor_for,
                               gallery_pages, grid_name, index_record, scan, sheet_tile)
from ..nets import get_net
from ..progress import Tracker
from ..weights import read_checkpoint
from . import provenance
from .job import ItemResult, Job, Outcome, RunOptions
from .outputs import OutputLock

STATE = ".state.pt"


@dataclass
class Checked:
    pictures: Pictures
    state: Optional[dict]   # an unfinished scan to continue


def check(job: Job, output: Path) -> Checked:
    """Refuse, before any work, an atlas that can't be written (see the module's rules)."""
    cfg: TopPatchesConfig = job.config
    if output.exists() and not output.is_dir():
        raise OutputError(f"{output} is a file", "the atlas is a folder: choose a folder path")
    if output.suffix.lower() in I.OUTPUT_SUFFIXES:
        raise OutputError(f"{output} names a picture", "the atlas is a folder: choose a "
                          "folder path, e.g. atlas/")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", "create it first")
    source = Path(job.inputs[0])
    if output.exists() and source.exists() and source.samefile(output):
        raise OutputError(f"output {output} is the input", "choose another folder")
    pictures = Pictures(job.inputs[0])
    state = None
    if output.is_dir() and any(output.iterdir()):
        saved = read_state(output)
        fresh = TopPatches(cfg, pictures.names, channel_counts(cfg))
        if saved is not None and fresh.matches(saved) and saved["done"] < saved["total"]:
            state = saved
        elif not job.overwrite:
            pictures.close()
            if saved is not None and fresh.matches(saved):
                raise OutputError(f"{output} holds a finished atlas",
                                  "pass `overwrite` to make it again, or choose another folder")
            if saved is not None:
                raise OutputError(f"{output} holds an unfinished atlas of other settings or "
                                  "pictures", "run its own command again to continue it, "
                                  "pass `overwrite` to start afresh, or choose another folder")
            raise OutputError(f"{output} exists and is not empty",
                              "pass `overwrite` or choose another folder")
    return Checked(pictures, state)


def read_state(output: Path) -> Optional[dict]:
    """The saved scan in an atlas folder, or None (none there, or unreadable)."""
    path = output / STATE
    if not path.is_file():
        return None
    try:
        return read_checkpoint(path)
    except Exception:  # a damaged state is no state: the folder's rules then apply
        return None


def save_state(output: Path, result: TopPatches) -> None:
    def write(f):
        buffer = io.BytesIO()
        torch.save(result.state_dict(), buffer)
        f.write(buffer.getvalue())
    atomic_write(output / STATE, write)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def run(job: Job, output: Path, options: RunOptions, checked: Checked) -> Outcome:
    """Scan (continuing a saved scan), then cut the patches and write the atlas. Cancel
    saves the scan and ``index.json`` so far; the same command continues."""
    cfg: TopPatchesConfig = job.config
    pictures, names = checked.pictures, checked.pictures.names
    started = time.perf_counter()

    def read(name: str) -> torch.Tensor:
        return job.reading.load(pictures.data(name), work_size=cfg.size or None)

    output.mkdir(exist_ok=True)
    with OutputLock(output), pictures:
        result = TopPatches(cfg, names, channel_counts(cfg))
        if checked.state is not None:
            result.load_state_dict(checked.state)
        resumed_at = result.done
        tracker = Tracker("top-patches", len(names) + len(cfg.layers), options.callback,
                          options.cancel)
        extractor = extractor_for(cfg)
        try:
            scan(names, read, cfg, result, tracker=tracker, extractor=extractor)
        except Cancelled as exc:
            save_state(output, result)
            write_text(output / "index.json", json.dumps(index_record(result, names, cfg)))
            raise Cancelled(f"{exc.message}; the scan so far is saved in {output / STATE} "
                            f"and {output / 'index.json'}",
                            "run the same command again to continue") from exc
        save_state(output, result)
        items = [ItemResult(source, error=message) for source, message in result.skipped]
        for item in items:
            if options.on_item is not None:
                options.on_item(item)
        try:
            write_atlas(output, result, names, read, cfg, extractor, tracker, options.cancel)
        except Cancelled as exc:
            raise Cancelled(f"{exc.message}; the scan is complete and saved in "
                            f"{output / STATE}", "run the same command again to write the "
                            "atlas") from exc
        seconds = time.perf_counter() - started
        rec = provenance.record("top-patches", {"pictures": job.inputs[0]}, output, cfg,
                                seconds, {}, pictures=len(names), resumed_at=resumed_at,
                                channels=sum(channel_counts(cfg).values()),
                                skipped=[{"source": s, "error": m} for s, m in result.skipped])
        index = index_record(result, names, cfg)
        index["record"] = rec
        write_text(output / "index.json", json.dumps(index))
        for page, text in gallery_pages(index).items():
            write_text(output / page, text)
    return Outcome(output, rec, items, total=len(names), failed_to="read")


def write_atlas(output: Path, result: TopPatches, names, read, cfg: TopPatchesConfig,
                extractor, tracker: Tracker, cancel) -> None:
    """Each channel's grid and each layer's contact sheet (one progress step per layer)."""
    patches = collect_patches(result, names, read, cfg, extractor, cancel)
    net = get_net(cfg.model)
    for name in cfg.layers:
        (output / name).mkdir(exist_ok=True)
        tiles = []
        for channel, entries in enumerate(patches.pop(name)):
            grid = channel_grid(entries, net.layer(name), cfg.k, cfg.project)
            I.save_image(grid, output / grid_name(name, channel), overwrite=True)
            tiles.append(sheet_tile(grid, channel))
        sheet = contact_sheet(tiles, name, cfg.negative)
        I.save_image(sheet, output / f"{name}.png", overwrite=True)
        tracker.report(f"atlas {name}", {}, sheet)
        if cancel is not None and cancel.is_set() and name != cfg.layers[-1]:
            raise Cancelled(f"cancelled after the atlas of {name}", state=result)

