"""Config fields with a fixed set of values: their ``Literal`` types and the one check of them.

A field annotated ``Literal[...]`` (or ``Literal[...] | None``) in a config dataclass accepts only those
values; ``choice_problems`` finds every field that holds another, reading the annotations themselves, so
adding a value to a type is the only edit a new choice needs. The library modules that take the same
options (losses, relabel, data) import their types from here, so the config layer imports none of them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

from weakseg.errors import WeaksegError

LabeledPool = Literal["labelled", "any_positive"]
LabelUnit = Literal["source", "canvas"]
EvalInclude = Literal["pa", "all"]
ValidReference = Literal["visible", "truth"]
OnDevice = Literal["auto", "always", "never"]
Amp = Literal["auto", "bf16", "off"]
SelectMode = Literal["max", "min"]
NonFinite = Literal["stop", "skip"]
CompileMode = Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"]
CheckpointName = Literal["best", "last"]
Normalisation = Literal["known_mean", "all_mean", "class_mean", "sum"]
ExclusionMode = Literal["dice", "log"]
ScoreName = Literal["prob", "mc_std", "confidence"]
CandidateSet = Literal["predicted_positive", "predicted_label", "all_ignored"]
RankScope = Literal["image", "volume", "global"]
InitName = Literal["continue", "smile", "scratch"]
LrScheduleName = Literal["constant", "poly"]


def literal_values(tp: Any) -> tuple[Any, ...] | None:
    """The values of ``Literal[...]`` or ``Literal[...] | None`` (None excluded), else None."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if typing.get_origin(arg) is Literal:
                return typing.get_args(arg)
    return None


def allows_none(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def choice_message(key: str, valid: tuple[Any, ...], got: Any) -> str:
    """``key must be one of 'a', 'b', got 'x'``: one line naming the key and its values."""
    return f"{key} must be one of {', '.join(repr(v) for v in valid)}, got {got!r}"


def check_choice(key: str, value: Any, tp: Any) -> None:
    """Raise ``WeaksegError`` naming ``key`` when ``value`` is not one of the ``Literal`` type ``tp``."""
    valid = literal_values(tp)
    if valid is not None and value not in valid and not (value is None and allows_none(tp)):
        raise WeaksegError(choice_message(key, valid, value))


def choice_problems(obj: Any, prefix: str = "") -> list[str]:
    """One line per ``Literal`` field of the dataclass ``obj`` (and its nested dataclasses) holding another value."""
    problems: list[str] = []
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, tp = getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            problems += choice_problems(value, f"{prefix}{f.name}.")
            continue
        try:
            check_choice(prefix + f.name, value, tp)
        except WeaksegError as err:
            problems.append(str(err))
    return problems
