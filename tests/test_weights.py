"""Weights registry, resolution and loading.

The reliability checklist's weights cases (W-01 … W-10: pickled code, corrupt files, downloads,
offline mode, cache location, state-dict mismatches) are in test_reliability_weights.py.
"""
import hashlib

import pytest
import torch
from safetensors.torch import save_file

from painterly import weights as W
from painterly.errors import WeightsError
from painterly.features import NetSpec, build_extractor
from painterly.nets import vgg_features


def _expected(arch="vgg16"):
    return {f"features.{k}": v.shape for k, v in vgg_features(arch).state_dict().items()}


def _state(arch="vgg16"):
    return {f"features.{k}": v for k, v in vgg_features(arch).state_dict().items()}


def test_shared_safetensors_found_by_name_and_verified(real_weights):
    spec = W.get_spec("vgg16-caffe")
    path = W.resolve(spec)
    assert path.name == "vgg16-caffe-features.safetensors"
    assert W.verify(path, spec).startswith("5486cb09")


def test_resolution_order_explicit_then_folder_then_cache(tmp_path, monkeypatch):
    spec = W.get_spec("vgg16-torchvision")
    folder, cache = tmp_path / "folder", tmp_path / "cache"
    folder.mkdir(), cache.mkdir(exist_ok=True)
    monkeypatch.setattr(W, "verify", lambda path, spec: "x")  # hashes are tested separately
    (cache / "vgg16-397923af.pth").write_bytes(b"c")
    assert W.resolve(spec) == cache / "vgg16-397923af.pth"
    monkeypatch.setenv("PAINTERLY_WEIGHTS_DIR", str(folder))
    (folder / "vgg16-397923af.pth").write_bytes(b"f")
    assert W.resolve(spec) == folder / "vgg16-397923af.pth"
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"e")
    assert W.resolve(spec, explicit=explicit) == explicit


def test_offline_with_nothing_names_file_url_and_folder(tmp_path):
    with pytest.raises(WeightsError) as err:
        W.resolve(W.get_spec("vgg19-caffe"))
    text = str(err.value)
    assert "vgg19-d01eb7cb.pth" in text and "https://" in text and str(tmp_path / "cache") in text
    assert err.value.exit_code == 5


def test_pth_and_safetensors_load_features_only(tmp_path):
    state = _state()
    full = dict(state, **{"classifier.0.weight": torch.zeros(2, 2)})
    torch.save(full, tmp_path / "w.pth")
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in ("w.pth", "w.safetensors"):
        loaded = W.load_state_dict(tmp_path / name, _expected())
        assert set(loaded) == set(state)
        assert torch.equal(loaded["features.0.weight"], state["features.0.weight"])


def test_key_and_shape_mismatches_are_named(tmp_path):
    vgg19 = _state("vgg19")
    save_file(vgg19, str(tmp_path / "v19.safetensors"))
    with pytest.raises(WeightsError, match="unexpected"):
        W.load_state_dict(tmp_path / "v19.safetensors", _expected("vgg16"))
    wrong = _state()
    wrong["features.0.weight"] = torch.zeros(64, 3, 5, 5)
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(WeightsError, match=r"features\.0\.weight has shape"):
        W.load_state_dict(tmp_path / "wrong.safetensors", _expected())


def test_explicit_weights_file_builds_extractor(tmp_path):
    save_file(_state(), str(tmp_path / "w.safetensors"))
    ext = build_extractor(NetSpec("vgg16", weights=str(tmp_path / "w.safetensors")),
                          ("relu1_1",), torch.device("cpu"), "fp32")
    assert ext(torch.rand(1, 3, 32, 32))["relu1_1"].shape[1] == 64


def test_registry_records_hash_and_convention():
    for spec in W.REGISTRY.values():
        assert spec.url.startswith("https://")
        assert spec.download_file.filename.split("-")[1].startswith(spec.download_file.sha256)
        assert spec.convention in (W.CAFFE_BGR, W.TORCHVISION_RGB)


def test_sha256_of_file(tmp_path):
    (tmp_path / "f").write_bytes(b"painterly" * 1000)
    assert W.sha256_of(tmp_path / "f") == hashlib.sha256(b"painterly" * 1000).hexdigest()
