"""The only door through which network weights enter painterly.

A registry of :class:`WeightSpec` entries; resolution order for a spec:
explicit file -> ``$PAINTERLY_WEIGHTS_DIR`` -> the cache folder -> download once (progress
bar, hash check, atomic rename). Loading is safe: ``.safetensors``, or ``torch.load`` with
``weights_only=True`` and nothing weaker. Environment variables are read when used.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DownloadError, WeightsError

log = logging.getLogger(__name__)

CAFFE_BGR = "caffe"            # BGR, 0-255, minus ImageNet mean, no std
TORCHVISION_RGB = "torchvision"  # RGB, 0-1, (x - mean) / std


@dataclass(frozen=True)
class WeightFile:
    filename: str
    sha256: str  # a full hex digest, or the prefix that is all that is known


@dataclass(frozen=True)
class WeightSpec:
    name: str
    arch: str
    convention: str
    url: str
    files: tuple[WeightFile, ...]  # files[0] is what `url` gives; others are equivalent copies
    licence: str
    description: str = ""

    @property
    def download_file(self) -> WeightFile:
        return self.files[0]


_JCJ = "https://web.eecs.umich.edu/~justincj/models/"
_TV = "https://download.pytorch.org/models/"
_CAFFE_LICENCE = "CC BY 4.0 (Oxford Visual Geometry Group)"
_TV_LICENCE = "BSD-3-Clause (torchvision); trained on ImageNet, whose terms apply"

REGISTRY: dict[str, WeightSpec] = {s.name: s for s in [
    WeightSpec(
        "vgg16-caffe", "vgg16", CAFFE_BGR, _JCJ + "vgg16-00b39a1b.pth",
        (WeightFile("vgg16-00b39a1b.pth", "00b39a1b"),
         # The same convolution weights as safetensors (features.* only); digest verified.
         WeightFile("vgg16-caffe-features.safetensors",
                    "5486cb0996fe35de774cfebd6e6de90b0757334bdad61a1cf15d7da7ae5777a9")),
        _CAFFE_LICENCE, "original Caffe VGG16 as converted for neural-style (default)"),
    WeightSpec(
        "vgg19-caffe", "vgg19", CAFFE_BGR, _JCJ + "vgg19-d01eb7cb.pth",
        (WeightFile("vgg19-d01eb7cb.pth", "d01eb7cb"),
         WeightFile("vgg19-caffe-features.safetensors", "")),
        _CAFFE_LICENCE, "original Caffe VGG19 as converted for neural-style (Gatys et al.)"),
    WeightSpec(
        "vgg16-torchvision", "vgg16", TORCHVISION_RGB, _TV + "vgg16-397923af.pth",
        (WeightFile("vgg16-397923af.pth", "397923af"),), _TV_LICENCE, "torchvision VGG16"),
    WeightSpec(
        "vgg19-torchvision", "vgg19", TORCHVISION_RGB, _TV + "vgg19-dcbb9e9d.pth",
        (WeightFile("vgg19-dcbb9e9d.pth", "dcbb9e9d"),), _TV_LICENCE, "torchvision VGG19"),
]}

DEFAULT_FOR_ARCH = {"vgg16": "vgg16-caffe", "vgg19": "vgg19-caffe"}


def get_spec(name: str) -> WeightSpec:
    if name not in REGISTRY:
        raise WeightsError(f"unknown weights {name!r}", f"known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def spec_for_file(filename: str) -> WeightSpec | None:
    """The registry entry one of whose files has this name, if any."""
    return next((s for s in REGISTRY.values() if any(f.filename == filename for f in s.files)),
                None)


def weights_dir() -> Path | None:
    """The folder of local weight copies named by ``PAINTERLY_WEIGHTS_DIR``, if set."""
    value = os.environ.get("PAINTERLY_WEIGHTS_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """``$PAINTERLY_CACHE``, else torch hub's checkpoint folder (honours ``$TORCH_HOME``)."""
    value = os.environ.get("PAINTERLY_CACHE")
    if value:
        return Path(value).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints"


def is_offline() -> bool:
    return os.environ.get("PAINTERLY_OFFLINE", "").lower() in ("1", "true", "yes")


def find_local(spec: WeightSpec) -> Path | None:
    """A copy of the spec's weights in the weights folder or the cache, if any."""
    for folder in (weights_dir(), cache_dir()):
        if folder is None:
            continue
        for wf in spec.files:
            path = folder / wf.filename
            if path.is_file():
                return path
    return None


def resolve(spec: WeightSpec, explicit: str | os.PathLike | None = None,
            offline: bool | None = None) -> Path:
    """Where the spec's weights are, downloading them once if allowed."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}", "check the --weights path")
        return path
    local = find_local(spec)
    if local is not None:
        verify(local, spec)
        return local
    if is_offline() if offline is None else offline:
        raise WeightsError(
            f"weights {spec.name!r} not found and offline",
            f"download {spec.url} and put {spec.download_file.filename} in {cache_dir()} "
            f"(or in the folder named by PAINTERLY_WEIGHTS_DIR)")
    return download(spec)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, spec: WeightSpec) -> str:
    """Check a file against the digest recorded for its name; return its sha256."""
    expected = next((wf.sha256 for wf in spec.files if wf.filename == path.name), "")
    actual = sha256_of(path)
    if expected and not actual.startswith(expected):
        raise WeightsError(f"weights file {path} is corrupt (sha256 {actual[:12]}…, "
                           f"expected {expected[:12]}…)", "delete it and run again to re-download")
    return actual


def download(spec: WeightSpec) -> Path:
    """Download into the cache: temp file, progress bar, hash check, atomic rename."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / spec.download_file.filename
    log.info("downloading %s to %s", spec.url, target)
    try:
        # torch.hub writes to a temp file in the same folder, checks the sha256 prefix,
        # then moves it into place, so an interrupted download leaves no partial target.
        torch.hub.download_url_to_file(spec.url, str(target),
                                       hash_prefix=spec.download_file.sha256 or None,
                                       progress=True)
    except RuntimeError as exc:  # hash mismatch
        raise DownloadError(f"download of {spec.url} failed its hash check: {exc}",
                            "try again; if it persists, report it") from exc
    except OSError as exc:
        raise DownloadError(f"download of {spec.url} failed: {exc}",
                            f"check your connection, or put {target.name} in {folder}") from exc
    return target


def load_state_dict(path: Path, expected: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Load the ``features.*`` tensors of a weights file, checking names and shapes strictly."""
    tensors = _read_tensors(path)
    features = {k: v for k, v in tensors.items() if k.startswith("features.")}
    missing = sorted(set(expected) - set(features))
    unexpected = sorted(set(features) - set(expected))
    if missing or unexpected:
        raise WeightsError(f"weights file {path} does not match the architecture "
                           f"(missing: {missing[:4]}, unexpected: {unexpected[:4]})",
                           "pick the --model that these weights belong to")
    for key, shape in expected.items():
        if features[key].shape != shape:
            raise WeightsError(f"weights file {path}: {key} has shape {tuple(features[key].shape)}, "
                               f"expected {tuple(shape)}", "pick the --model these weights belong to")
    return {k: v.float() for k, v in features.items()}


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"cannot read weights file {path}: {exc}",
                               "the file is damaged; download it again") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(f"weights file {path} contains executable Python objects; refusing to "
                           "load", "convert it to .safetensors or use the official file") from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc}",
                           "the file is damaged; download it again") from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"weights file {path} holds no state dict", "use a .pth state dict")
    return obj
