"""Loopback networking helpers. crossclear never binds or dials outside 127.0.0.1 in tests."""

from __future__ import annotations

import socket
import time

LOOPBACK = "127.0.0.1"


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, host: str = LOOPBACK, timeout_seconds: float = 30.0) -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_seconds:.0f} s") from None
            time.sleep(0.05)
