"""Fixtures for the native BN254 tests.

`native` is the compiled extension: normally `crossclear.zk._bn254`, or the library named by
CROSSCLEAR_BN254_EXTENSION, the AddressSanitizer/UBSan build that `make sanitize` runs these
same tests against. That build is installed under the extension's module name before
anything imports `crossclear.zk`, so the native backend runs on it too.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

import pytest

SANITIZED_EXTENSION = os.environ.get("CROSSCLEAR_BN254_EXTENSION")
MODULE_NAME = "crossclear.zk._bn254"


def _install_sanitized(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[MODULE_NAME] = module
    return module


if SANITIZED_EXTENSION:
    assert "crossclear.zk" not in sys.modules, "crossclear.zk was imported before the sanitized extension"
    _install_sanitized(SANITIZED_EXTENSION)


@pytest.fixture(scope="session")
def native() -> ModuleType:
    module = importlib.import_module(MODULE_NAME)
    if SANITIZED_EXTENSION:
        assert module.__file__ == SANITIZED_EXTENSION
    return module
