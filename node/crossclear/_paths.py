"""Where the repository checkout is: artifacts, circuits and node_modules live there."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository checkout: `CROSSCLEAR_REPO_ROOT`, else the folder holding node_modules above this package."""
    configured = os.environ.get("CROSSCLEAR_REPO_ROOT")
    if configured:
        return Path(configured).resolve()
    here = Path(__file__).resolve()
    for candidate in here.parents:
        if (candidate / "node_modules").is_dir() and (candidate / "package.json").is_file():
            return candidate
    # The editable install keeps the package at <repo>/node/crossclear, so this is the best guess.
    return here.parents[2]
