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
