"""No function of the metrics and training packages is longer than ``MAX_LINES``: long ones are split into
named steps."""

from __future__ import annotations

import ast
from pathlib import Path

import weakseg

PACKAGES = ("metrics", "training")
MAX_LINES = 80


def long_functions(root: Path, packages: tuple[str, ...] = PACKAGES, limit: int = MAX_LINES) -> list[str]:
    """``path:line name (n lines)`` of every function (methods and nested ones too) longer than ``limit``."""
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > limit:
                        found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_function_is_longer_than_the_limit() -> None:
    assert long_functions(Path(weakseg.__file__).parent) == []


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    (tmp_path / "metrics" / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path, ("metrics",)) == ["metrics/m.py:5 long (82 lines)"]
