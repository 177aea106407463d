"""The Makefile's torch guard: any torch build may be installed; a later install must not replace it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _check(venv: Path, build: str) -> subprocess.CompletedProcess[str]:
    """``make check-torch`` against a fake interpreter that reports ``build`` as its torch."""
    return subprocess.run(["make", "-s", "--no-print-directory", f"VENV={venv}", "check-torch"], cwd=ROOT,
                          capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "FAKE_TORCH": build},
                          timeout=60)


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text('#!/bin/sh\necho "$FAKE_TORCH"\n')
    python.chmod(0o755)
    return tmp_path


@pytest.mark.parametrize("build", ["2.13.0+cpu cpu", "2.13.0+cu128 12.8", "2.13.0 12.8"])
def test_any_build_passes_while_it_stays_the_one_installed(venv: Path, build: str) -> None:
    (venv / ".torch-build").write_text(build + "\n")
    out = _check(venv, build)
    assert out.returncode == 0, out.stderr
    assert f"torch unchanged since install: {build}" in out.stdout


@pytest.mark.parametrize("later", ["2.13.0+cu128 12.8", "2.12.0+cpu cpu", "2.13.0+cu126 12.6"])
def test_a_replaced_version_or_build_fails(venv: Path, later: str) -> None:
    (venv / ".torch-build").write_text("2.13.0+cpu cpu\n")
    out = _check(venv, later)
    assert out.returncode != 0
    assert f"torch was replaced: installed 2.13.0+cpu cpu, now {later}" in out.stderr


def test_the_makefile_asks_for_no_particular_build() -> None:
    text = (ROOT / "Makefile").read_text()
    assert "+cpu" not in text and "TORCH_INDEX" in text
