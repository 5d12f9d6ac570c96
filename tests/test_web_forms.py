"""The forms a front end shows (painterly.jobs.forms) can't drift from the configs: every
field is offered or deliberately hidden, and every choice and bound a form states is the one
the config's own validation enforces."""
from __future__ import annotations

import dataclasses

import pytest

from painterly.errors import ConfigError
from painterly.jobs import forms
from painterly.jobs.job import config_class

KINDS = forms.FORM_KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_is_offered_or_deliberately_hidden(kind):
    offered = {s.name for s in forms.describe(kind)}
    fields = {f.name for f in dataclasses.fields(config_class(kind))}
    assert offered | (fields & forms.HIDDEN) == fields
    assert not offered & forms.HIDDEN


@pytest.mark.parametrize("kind", KINDS)
def test_the_form_of_defaults_reads_back_as_the_default_config(kind):
    answers = {s.name: s.default for s in forms.describe(kind)}
    assert forms.read(kind, answers) == config_class(kind)()
    assert forms.read(kind, {}) == config_class(kind)()


def _settings():
    for kind in KINDS:
        for s in forms.describe(kind):
            yield kind, s


@pytest.mark.parametrize("kind,setting", [(k, s) for k, s in _settings() if s.choices],
                         ids=lambda v: getattr(v, "name", v))
def test_each_choice_is_accepted_and_nothing_else(kind, setting):
    for choice in setting.choices:
        assert getattr(forms.read(kind, {setting.name: choice}), setting.name) == choice
    with pytest.raises(ConfigError):
        forms.read(kind, {setting.name: "no-such-choice"})


@pytest.mark.parametrize("kind,setting",
                         [(k, s) for k, s in _settings()
                          if s.minimum is not None or s.maximum is not None],
                         ids=lambda v: getattr(v, "name", v))
def test_each_bound_is_the_configs_own(kind, setting):
    step = 1 if setting.type == "int" else 0.01
    for bound, outside in ((setting.minimum, -step), (setting.maximum, step)):
        if bound is None:
            continue
        assert getattr(forms.read(kind, {setting.name: bound}), setting.name) == bound
        with pytest.raises(ConfigError):
            forms.read(kind, {setting.name: bound + outside})


def test_types_and_help_come_from_the_dataclass():
    fast = {s.name: s for s in forms.describe("fast")}
    assert fast["strength"].type == "float" and fast["strength"].maximum == 1.0
    assert fast["style_weights"].type == "list" and fast["style_weights"].item == "float"
    # the comment beside the field and its continuation line below
    assert fast["work_size"].help.startswith("the networks paint at most this long side")
    assert fast["work_size"].help.endswith("0 = full size")
    style = {s.name: s for s in forms.describe("style")}
    assert style["lr"].optional and style["lr"].type == "float"
    assert style["quality"].choices == ("quick", "draft", "default", "high")


def test_answers_are_converted_and_refusals_name_the_setting():
    cfg = forms.read("style", {"size": "256", "style_weights": "1, 2", "lr": "",
                               "content_layers": ["relu3_1"]})
    assert (cfg.size, cfg.style_weights, cfg.lr, cfg.content_layers) == \
        (256, (1.0, 2.0), None, ("relu3_1",))
    with pytest.raises(ConfigError, match="invalid `size`: 'big'"):
        forms.read("style", {"size": "big"})
    with pytest.raises(ConfigError, match="unknown setting `weights`"):
        forms.read("style", {"weights": "/etc/passwd"})   # paths are never taken from a form
    with pytest.raises(ConfigError, match="unknown kind"):
        forms.read("top-patches", {})


def test_recorded_settings_restore_only_what_a_form_offers():
    recorded = dataclasses.asdict(config_class("dream")(steps=3))
    restored = forms.restorable("dream", recorded)
    assert restored["steps"] == 3 and "guide" not in restored and "device" not in restored
