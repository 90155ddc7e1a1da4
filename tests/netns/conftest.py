"""Fixtures for the multi-host tests: a namespace network per test, removed afterwards."""

from collections.abc import Iterator

import pytest

from .harness import NamespaceNetwork, NamespacesUnavailable


@pytest.fixture
def namespaces() -> Iterator[NamespaceNetwork]:
    network = NamespaceNetwork()
    try:
        network.create()
    except NamespacesUnavailable as error:
        pytest.fail(f"cannot build the multi-host test network: {error}", pytrace=False)
    try:
        yield network
    finally:
        network.destroy()
