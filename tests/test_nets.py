import pytest
import torch

from painterly.errors import ConfigError
from painterly.features import NetSpec, build_extractor
from painterly.nets import layer_index, layer_names, vgg_features


def test_layer_names_match_torchvision_indices():
    assert layer_index("vgg16", "relu1_1") == 1
    assert layer_index("vgg16", "relu4_2") == 20
    assert layer_index("vgg16", "relu5_1") == 25
    assert layer_index("vgg19", "relu5_4") == 35
    assert len(layer_names("vgg16")) == 31 and len(layer_names("vgg19")) == 37
    keys = set(vgg_features("vgg16").state_dict())
    assert "28.weight" in keys and "30.weight" not in keys


def test_unknown_layer_names_valid_ones():
    with pytest.raises(ConfigError, match="relu4_2"):
        layer_index("vgg16", "relu9_9")


def test_extractor_truncates_and_returns_named_fp32_features():
    ext = build_extractor(NetSpec("tiny"), ("relu1_1", "relu3_1"), torch.device("cpu"), "bf16")
    assert len(ext.net) == layer_index("vgg16", "relu3_1") + 1
    feats = ext(torch.rand(1, 3, 32, 48))
    assert set(feats) == {"relu1_1", "relu3_1"}
    assert feats["relu1_1"].shape[-2:] == (32, 48) and feats["relu3_1"].shape[-2:] == (8, 12)
    assert all(f.dtype == torch.float32 for f in feats.values())
    assert not any(p.requires_grad for p in ext.parameters())


def test_avg_pooling_and_bad_pooling():
    ext = build_extractor(NetSpec("tiny", pooling="avg"), ("relu2_1",), torch.device("cpu"), "fp32")
    assert isinstance(ext.net[4], torch.nn.AvgPool2d)
    with pytest.raises(ConfigError):
        build_extractor(NetSpec("tiny", pooling="min"), ("relu2_1",), torch.device("cpu"))
