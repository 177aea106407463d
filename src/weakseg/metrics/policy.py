"""The empty-case policy: how Dice and surface distances score empty references and predictions.

Defaults follow ``ecosystem.md`` §7.2: a missed structure or a false alarm scores Dice 0 and the worst
surface distance (the volume's diagonal in mm), so false positives on healthy images lower the mean
instead of vanishing in a NaN; when reference and prediction are both empty the case is excluded from
means and counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from weakseg.errors import WeaksegError

_CHOICES = {
    "dice_both_empty": ("exclude", "one"),
    "hd_one_empty": ("diagonal", "nan"),
    "hd_both_empty": ("exclude", "zero"),
}

HD_WORST_DEFINITION = "volume diagonal in mm: sqrt(sum_i (n_i * spacing_i)^2) over the image's shape n and spacing"


@dataclass(frozen=True)
class EmptyCasePolicy:
    """How empty reference/prediction pairs are scored.

    - ``dice_both_empty``: "exclude" (NaN per case, left out of means and counted) or "one".
      An empty reference or prediction on its own always scores Dice 0.
    - ``hd_one_empty``: missed structure or false alarm: "diagonal" (worst value, the volume diagonal in
      mm) or "nan" (left out of means and counted, MONAI's behaviour).
    - ``hd_both_empty``: "exclude" (NaN, counted) or "zero".
    """

    dice_both_empty: Literal["exclude", "one"] = "exclude"
    hd_one_empty: Literal["diagonal", "nan"] = "diagonal"
    hd_both_empty: Literal["exclude", "zero"] = "exclude"

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                raise WeaksegError(f"empty-case policy {name}={value!r} is not valid; use one of {', '.join(choices)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON, with the worst-value rule spelled out."""
        out: dict[str, Any] = asdict(self)
        out["hd_worst"] = HD_WORST_DEFINITION if self.hd_one_empty == "diagonal" else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmptyCasePolicy:
        """Inverse of ``to_dict`` (the informational ``hd_worst`` key is ignored)."""
        unknown = set(data) - set(_CHOICES) - {"hd_worst"}
        if unknown:
            raise WeaksegError(f"empty-case policy: unknown key(s) {sorted(unknown)}; valid keys: {sorted(_CHOICES)}")
        return cls(**{k: v for k, v in data.items() if k in _CHOICES})
