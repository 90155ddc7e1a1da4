"""Helpers for the risk tests: the v2 worked example's files, taken from the methodology doc."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "margin-methodology.md"


def doc_block(tag: str) -> str:
    """The fenced block of docs/margin-methodology.md whose info string ends with `tag`."""
    match = re.search(rf"```\w+ {re.escape(tag)}\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, f"docs/margin-methodology.md has no block tagged {tag}"
    return match.group(1)


@pytest.fixture
def example(tmp_path: Path) -> dict[str, Path]:
    """The worked example's RISK, ACCOUNTS and HISTORY files, written from the doc."""
    files = {"risk": "v2-risk", "accounts": "v2-accounts", "history": "v2-history"}
    paths = {}
    for name, tag in files.items():
        path = tmp_path / f"{name}.{'csv' if name == 'history' else 'json'}"
        path.write_text(doc_block(tag))
        paths[name] = path
    return paths
