from __future__ import annotations

import pytest

from weakseg.errors import WeaksegError
from weakseg.metrics.policy import EmptyCasePolicy


def test_defaults_and_round_trip() -> None:
    p = EmptyCasePolicy()
    d = p.to_dict()
    assert d["dice_both_empty"] == "exclude" and d["hd_one_empty"] == "diagonal" and d["hd_both_empty"] == "exclude"
    assert "diagonal" in d["hd_worst"]
    assert EmptyCasePolicy.from_dict(d) == p
    q = EmptyCasePolicy(dice_both_empty="one", hd_one_empty="nan", hd_both_empty="zero")
    assert q.to_dict()["hd_worst"] is None
    assert EmptyCasePolicy.from_dict(q.to_dict()) == q


def test_bad_values_name_the_field_and_choices() -> None:
    with pytest.raises(WeaksegError, match="hd_one_empty.*diagonal, nan"):
        EmptyCasePolicy(hd_one_empty="max")  # type: ignore[arg-type]
    with pytest.raises(WeaksegError, match="unknown key"):
        EmptyCasePolicy.from_dict({"dice_empty": "one"})


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        EmptyCasePolicy().dice_both_empty = "one"  # type: ignore[misc]
