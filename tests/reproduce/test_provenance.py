"""What a result records about the code that made it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from weakseg.reproduce.provenance import git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_dirty_means_code_changed_not_results(tmp_path) -> None:
    """Rewriting a committed result (every rerun does) is not a code change; editing a source file is."""
    (tmp_path / "src").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "results" / "r.json").write_text("{}\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    head = _git(tmp_path, "rev-parse", "HEAD")
    sub = tmp_path / "src"                                   # asked from a subfolder, as the package does
    assert git_commit(sub) == head
    (tmp_path / "results" / "r.json").write_text('{"new": 1}\n')
    assert git_commit(sub) == head
    (tmp_path / "src" / "a.py").write_text("x = 2\n")
    assert git_commit(sub) == f"{head}+dirty"
