"""Fixed-choice config fields: their ``Literal`` types are the one check, with one message shape."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

from weakseg.config import Config, load_config
from weakseg.config.choices import choice_problems, literal_values
from weakseg.errors import WeaksegError


def literal_fields(cls: type, prefix: str = "") -> dict[str, tuple[Any, ...]]:
    """``{"section.field": values}`` of every ``Literal`` field of the dataclass ``cls``, nested ones included."""
    out: dict[str, tuple[Any, ...]] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out |= literal_fields(tp, f"{prefix}{f.name}.")
        elif (valid := literal_values(tp)) is not None:
            out[prefix + f.name] = valid
    return out


FIELDS = literal_fields(Config)


def _get(cfg: Config, key: str) -> object:
    node: object = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def test_the_fixed_choice_fields_are_found() -> None:
    assert {"train.labeled_pool", "train.amp", "data.mnist.label_unit", "data.organs.valid_reference",
            "smile.normalisation", "marginal.exclusion", "smiler.score", "smiler.candidate_set",
            "smiler.rank_scope", "smiler.init", "eval.checkpoint", "train.compile_mode"} <= set(FIELDS)
    assert FIELDS["smiler.rank_scope"] == ("image", "volume", "global")


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_every_default_is_one_of_its_values(key: str) -> None:
    assert _get(Config(), key) in FIELDS[key]


@pytest.mark.parametrize("key", ["train.labeled_pool", "train.select_mode", "data.on_device", "smiler.rank_scope",
                                 "smiler.candidate_set", "smile.normalisation", "marginal.exclusion",
                                 "data.brats.eval_include"])
def test_an_invalid_value_names_the_key_and_the_valid_values(key: str) -> None:
    valid = ", ".join(repr(v) for v in FIELDS[key])
    with pytest.raises(WeaksegError) as err:
        load_config(None, [f"{key}=nonsense"])
    assert f"{key} must be one of {valid}, got 'nonsense'" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_every_bad_choice_is_reported_at_once() -> None:
    with pytest.raises(WeaksegError, match=r"2 config problems:\n  train.amp must be one of (.|\n)*smiler.init"):
        load_config(None, ["train.amp=fast", "smiler.init=previous"])


def test_a_config_built_in_code_is_checked_too() -> None:
    cfg = Config()
    cfg.eval.checkpoint = "first"
    assert choice_problems(cfg) == ["eval.checkpoint must be one of 'best', 'last', got 'first'"]


def test_the_library_modules_use_the_config_types() -> None:
    from weakseg.config import choices
    from weakseg.losses import partial_label
    from weakseg.relabel import selection

    assert selection.ScoreName is choices.ScoreName and selection.RankScope is choices.RankScope
    assert partial_label.NORMALISATIONS == FIELDS["smile.normalisation"]
    assert partial_label.EXCLUSION_MODES == FIELDS["marginal.exclusion"]
