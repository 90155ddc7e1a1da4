"""Fixtures for chain tests: one deployed anvil chain per test module (deploying takes ~1 s)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

# Before the suite is imported, so its plain asserts explain their failures like test code's.
pytest.register_assert_rewrite("crossclear.chains.conformance")

from crossclear.devnet.chain import DevChain  # noqa: E402

# Distinct chain ids per module make a mix-up between modules' chains visible.
_chain_ids = itertools.count(41001)


@pytest.fixture(scope="module")
def chain() -> Iterator[DevChain]:
    with DevChain.start(chain_id=next(_chain_ids)) as dev_chain:
        yield dev_chain
