"""Each kind's settings as a form: what a front end shows and how it reads the answers back.

Everything comes from the config dataclasses themselves — names, types, defaults, and the
comment beside each field as its help — so a form can never drift from the library. What
the dataclasses can't say is kept here, next to nothing else: the fields a form must not
offer (those that take a file path: a web page never names files on the server) and the
choices and hard bounds of a field. tests/test_web_forms.py checks each of those against
the config's own validation, and that every field is either offered or deliberately hidden.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import tokenize
import typing
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import ConfigError
from .job import KINDS, config_class

# What the page never offers. Paths: weights, decoder, guide (files on the machine);
# device: the server's business, not a picture's.
HIDDEN = frozenset({"weights", "decoder", "guide", "device"})
# Kinds a page can run: top-patches needs a folder of thousands of pictures on the machine.
FORM_KINDS = ("style", "fast", "dream", "activations", "reconstruct", "features")

# Choices, by field, read from the modules that validate them (module, constant).
_CHOICES = {
    "quality": ("painterly.transfer", "PRESETS"),
    "optimizer": ("painterly.transfer", "OPTIMIZERS"),
    "preserve_color": ("painterly.transfer", "PRESERVE_COLOR"),
    "init": ("painterly.transfer", "INITS"),
    "precision": ("painterly.device", "PRECISIONS"),
    "model": ("painterly.features", "MODELS"),
    "reduce": ("painterly.inspect.activations", "REDUCTIONS"),
}
_KIND_CHOICES = {  # the same field name with other choices in one kind
    ("dream", "objective"): ("painterly.deepdream", "OBJECTIVES"),
    ("features", "objective"): ("painterly.inspect.features", "OBJECTIVES"),
    ("fast", "model"): ("painterly.fast", "ENCODERS"),
}
_LITERAL_CHOICES = {"pooling": ("max", "avg")}
# Hard bounds the configs enforce (inclusive), for number inputs and sliders.
_BOUNDS = {"strength": (0.0, 1.0), "whiten": (0.0, 1.0), "texture": (0.0, 4.0),
           "palette": (0.0, 1.0),
           "rotation": (0.0, 180.0),
           "size": (32, None), "min_size": (32, None), "guide_size": (32, None),
           "tile_size": (64, None), "octaves": (1, None), "steps": (0, None),
           "count": (1, None), "columns": (1, None), "tile": (16, None), "copies": (1, None),
           "k": (1, 100), "nmf_iterations": (1, None), "jitter": (0, None),
           "content_weight": (0.0, None), "style_weight": (0.0, None), "tv_weight": (0.0, None),
           "diversity": (0.0, None), "smoothing": (0.0, None)}
_KIND_BOUNDS = {("fast", "size"): (0, None), ("fast", "work_size"): (0, None),
                ("fast", "style_size"): (0, None), ("reconstruct", "iterations"): (1, None)}


@dataclass(frozen=True)
class Setting:
    """One form control: ``type`` is int, float, bool, choice, list (comma-separated) or text;
    ``optional``: empty means None."""

    name: str
    type: str
    default: Any
    help: str = ""
    choices: tuple = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    optional: bool = False
    item: str = ""              # lists: the type of each item


def describe(kind: str) -> list[Setting]:
    """The settings a form offers for ``kind``, in the dataclass's order."""
    _check_kind(kind)
    cls = config_class(kind)
    hints = typing.get_type_hints(cls)
    notes = field_comments(cls)
    return [_setting(kind, f, hints[f.name], notes.get(f.name, ""))
            for f in dataclasses.fields(cls) if f.name not in HIDDEN]


def read(kind: str, values: dict[str, Any]) -> Any:
    """The config for the answers of a form (JSON values); the library's own messages for
    what it refuses, one unknown or hidden setting named by its name."""
    _check_kind(kind)
    offered = {s.name: s for s in describe(kind)}
    settings = {}
    for name, value in values.items():
        if name not in offered:
            raise ConfigError(f"unknown setting `{name}` for {kind}",
                              "the settings are: " + ", ".join(offered))
        settings[name] = _convert(offered[name], value)
    return config_class(kind)(**settings)


def restorable(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The part of a picture's recorded settings that a form can set again."""
    offered = {s.name for s in describe(kind)} if kind in FORM_KINDS else set()
    return {k: v for k, v in settings.items() if k in offered}


def _check_kind(kind: str) -> None:
    if kind not in FORM_KINDS:
        raise ConfigError(f"unknown kind of job {kind!r}", "one of " + ", ".join(FORM_KINDS))


def _setting(kind: str, f: dataclasses.Field, hint, note: str) -> Setting:
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) \
        if optional else hint
    choices = _choices(kind, f.name)
    lo, hi = _KIND_BOUNDS.get((kind, f.name), _BOUNDS.get(f.name, (None, None)))
    if choices:
        kind_of, item = "choice", ""
    elif base in (bool, int, float, str):
        kind_of, item = base.__name__, ""
    elif typing.get_origin(base) is tuple:
        kind_of, item = "list", _item_type(base)
    else:                       # a union such as "0:16" or (3, 7): the config parses the text
        kind_of, item = "text", ""
    return Setting(f.name, kind_of, _json_default(f.default), note, choices, lo, hi,
                   optional, item)


def _choices(kind: str, name: str) -> tuple:
    where = _KIND_CHOICES.get((kind, name)) or _CHOICES.get(name)
    if where is None:
        return _LITERAL_CHOICES.get(name, ())
    module, constant = where
    return tuple(getattr(importlib.import_module(module), constant))


def _item_type(hint) -> str:
    args = [a for a in typing.get_args(hint) if a is not Ellipsis]
    for candidate in (float, int):
        if candidate in args:
            return candidate.__name__
    return "str"


def _json_default(value):
    return list(value) if isinstance(value, tuple) else value


def _convert(setting: Setting, value: Any) -> Any:
    """A JSON value as the dataclass field wants it (lists from arrays or "a,b" text)."""
    if setting.optional and value in (None, ""):
        return None
    if setting.type == "list":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"invalid `{setting.name}`: {value!r}", "give a list, a,b,c")
        items = [i.strip() if isinstance(i, str) else i for i in items]
        return tuple(_number(setting, i, setting.item) for i in items if i != "")
    if setting.type in ("int", "float"):
        return _number(setting, value, setting.type)
    if setting.type == "choice" and value not in setting.choices:
        # The config may take more (``init`` also takes a picture file); a form never does.
        raise ConfigError(f"invalid `{setting.name}`: {value!r}",
                          "one of " + ", ".join(map(str, setting.choices)))
    if setting.type == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"invalid `{setting.name}`: {value!r}", "true or false")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"invalid `{setting.name}`: {value!r}", "give text")
    return value


def _number(setting: Setting, value: Any, type_name: str):
    if type_name == "str":
        return str(value)
    try:
        number = float(value) if type_name == "float" else int(str(value), 10)
    except (TypeError, ValueError):
        raise ConfigError(f"invalid `{setting.name}`: {value!r}",
                          "give an integer" if type_name == "int" else "give a number") from None
    return number


def field_comments(cls: type) -> dict[str, str]:
    """The comment beside each field of a dataclass (and its continuation lines below);
    for a field with none, the comment block just above it. Base classes first."""
    notes: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass) and klass is not object:
            notes.update(_comments_of(klass))
    return notes


def _comments_of(klass: type) -> dict[str, str]:
    try:
        source = inspect.getsource(klass)
    except (OSError, TypeError):
        return {}
    names = {f.name for f in dataclasses.fields(klass)}
    lines = source.splitlines()
    comments = {t.start[0]: t.string.lstrip("# ").strip()
                for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT}
    notes, current, above, body = {}, None, [], 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        indent = len(line) - len(stripped)
        name = stripped.split(":", 1)[0].strip() if ":" in stripped else ""
        if name in names and not stripped.startswith("#"):
            current, body = name, indent
            notes[name] = comments.get(number) or " ".join(above)
            above = []
        elif stripped.startswith("#") and current and indent > body:
            notes[current] += " " + comments[number]      # a continuation, indented deeper
        elif stripped.startswith("#"):
            current, above = None, above + [comments[number]]
        else:
            current, above = None, []
    return {k: v.strip() for k, v in notes.items()}


__all__ = ["FORM_KINDS", "HIDDEN", "KINDS", "Setting", "describe", "field_comments", "read",
           "restorable"]
