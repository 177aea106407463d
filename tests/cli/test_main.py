"""The CLI's parser stays light: ``weakseg --help`` must not pay for importing torch or MONAI (seconds)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from weakseg.cli.main import COMMANDS, build_parser

HEAVY = ("torch", "monai", "scipy", "nibabel", "SimpleITK", "PIL", "tensorboard")


def _imported_after(code: str) -> list[str]:
    """Heavy modules present in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint('heavy:', *(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()[-1].split()[1:]      # help text comes first


def test_building_the_parser_imports_no_heavy_library() -> None:
    assert _imported_after("from weakseg.cli.main import build_parser\nbuild_parser()") == []


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["reproduce", "mnist", "--help"],
                                  ["reproduce", "organs", "--help"], ["train", "--help"]])
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    code = ("from weakseg.cli.main import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code")
    assert _imported_after(code) == []


def _all_parsers(parser: argparse.ArgumentParser, name: str = "weakseg") -> dict[str, argparse.ArgumentParser]:
    found = {name: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb, child in action.choices.items():
                found |= _all_parsers(child, f"{name} {verb}")
    return found


def test_every_option_has_help_naming_its_default() -> None:
    """Every argument has a help text; every option with a default says it in --help, and no literal '%%'."""
    parsers = _all_parsers(build_parser())
    assert {f"weakseg {c}" for c in COMMANDS} <= set(parsers) and "weakseg reproduce organs" in parsers
    missing = []
    for name, p in parsers.items():
        text = p.format_help()
        assert "%%" not in text, f"{name}: a literal '%%' in its help"
        formatter = p._get_formatter()
        for action in p._actions:
            if action.dest == "help" or isinstance(action, (argparse._SubParsersAction, argparse._VersionAction)):
                continue
            label = f"{name} {action.option_strings[0] if action.option_strings else action.dest}"
            if not action.help:
                missing.append(f"{label}: no help")
            elif action.default not in (None, False, []) and "default" not in formatter._get_help_string(action):
                missing.append(f"{label}: default {action.default!r} not shown")
    assert not missing, missing


def test_evaluating_the_configs_folder_points_to_training_into_runs(capsys) -> None:
    from weakseg.cli.main import main
    from weakseg.config.io import configs_root

    assert main(["evaluate", str(configs_root())]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a run folder" in err and "--out runs/" in err
    assert f"--out {configs_root()}" not in err and "--out configs" not in err
