"""Every relative link and image in README.md and docs/*.md points at a file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)          # code blocks are not links
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+://|#|mailto:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    missing = [t for t in _links(page) if not (page.parent / t.split("#")[0]).exists()]
    assert missing == [], f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_readme_links_every_docs_page() -> None:
    linked = {Path(t).name for t in _links(ROOT / "README.md")}
    assert {p.name for p in PAGES[1:]} <= linked


def _where_things_are() -> list[str]:
    """Backticked paths in the table of README's "Where things are" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Where things are", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    return [p for row in rows for p in re.findall(r"`([^`]+)`", row.split("|")[2])]


def test_where_things_are_matches_the_tree() -> None:
    pkg = ROOT / "src" / "weakseg"
    paths = _where_things_are()
    assert paths, "README has no 'Where things are' table"
    missing = [p for p in paths if "<" not in p and not ((pkg / p).exists() or (ROOT / p).exists())]
    assert missing == [], f"README's map names paths that do not exist: {missing}"
    named = {p.split("/")[0] for p in paths}
    packages = {d.name for d in pkg.iterdir() if (d / "__init__.py").is_file()}
    assert packages <= named, f"packages missing from README's map: {sorted(packages - named)}"
