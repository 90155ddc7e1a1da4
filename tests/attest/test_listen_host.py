"""A node listens on 127.0.0.1, or on a private (network-namespace) address; never elsewhere."""

import pytest

from crossclear.attest._node import check_listen_host


@pytest.mark.parametrize("host", ["127.0.0.1", "10.213.0.4", "192.168.1.7"])
def test_loopback_and_private_addresses_are_accepted(host: str) -> None:
    assert check_listen_host(host) == host


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("0.0.0.0", "neither loopback nor a private"),
        ("8.8.8.8", "neither loopback nor a private"),
        ("localhost", "not an IPv4 address"),
        ("::1", "not an IPv4 address"),
    ],
)
def test_public_unspecified_and_named_addresses_are_refused(host: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_listen_host(host)
