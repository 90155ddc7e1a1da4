"""Nodes on separate hosts: every node in its own Linux network namespace.

    bridge A ── veth ── node 0, node 1          bridge B ── veth ── node 2, node 3
        └──────────────── trunk (a veth pair) ─────────────────┘

The two bridges and the trunk make a partition {0,1} | {2,3} one link going down (the
trunk); one node's own link going down cuts it off from everyone ({0,1,2} | {3}). The kernel
here has no netem, so links go down and up, nothing is delayed or lost on purpose. Everything
lives in the root namespace only as bridges and veth ends without addresses, so several test
runs (different random tags) never see each other.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2's `ip`. Where namespaces cannot be
created the fixture fails with the reason: these tests must not pass by being skipped.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

REQUIREMENTS = (
    "the network-namespace tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2's `ip` "
    "(apt-get install iproute2); docs/attestation-network.md says what the machine needs"
)


class NamespacesUnavailable(RuntimeError):
    """This machine cannot create what the multi-host tests need."""


def _ip(*arguments: str) -> None:
    done = subprocess.run(["ip", *arguments], capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise NamespacesUnavailable(f"`ip {' '.join(arguments)}` failed: {done.stderr.strip()}")


@dataclass
class NamespaceNetwork:
    """`size` namespaces, the first `left` on bridge A and the rest on bridge B."""

    size: int = 4
    left: int = 2
    subnet: str = "10.213.0"
    tag: str = field(default_factory=lambda: "cc" + secrets.token_hex(2))
    created: list[tuple[str, str]] = field(default_factory=list)

    @property
    def namespaces(self) -> list[str]:
        return [f"{self.tag}n{index}" for index in range(self.size)]

    @property
    def hosts(self) -> list[str]:
        return [f"{self.subnet}.{index + 1}" for index in range(self.size)]

    def link(self, index: int) -> str:
        """The root-side end of node `index`'s veth (down: the node is cut off)."""
        return f"{self.tag}v{index}"

    @property
    def trunk(self) -> str:
        """The link between the two bridges (down: {left} | {right})."""
        return f"{self.tag}tA"

    def launcher(self, index: int) -> Sequence[str]:
        return ("ip", "netns", "exec", self.namespaces[index])

    def create(self) -> None:
        if os.geteuid() != 0:
            raise NamespacesUnavailable(f"not running as root; {REQUIREMENTS}")
        if shutil.which("ip") is None:
            raise NamespacesUnavailable(f"`ip` not found; {REQUIREMENTS}")
        try:
            bridges = (f"{self.tag}bA", f"{self.tag}bB")
            for bridge in bridges:
                _ip("link", "add", bridge, "type", "bridge")
                self.created.append(("link", bridge))
                _ip("link", "set", bridge, "up")
            _ip("link", "add", self.trunk, "type", "veth", "peer", "name", f"{self.tag}tB")
            self.created.append(("link", self.trunk))
            _ip("link", "set", self.trunk, "master", bridges[0], "up")
            _ip("link", "set", f"{self.tag}tB", "master", bridges[1], "up")
            for index, namespace in enumerate(self.namespaces):
                _ip("netns", "add", namespace)
                self.created.append(("netns", namespace))
                _ip("link", "add", self.link(index), "type", "veth", "peer", "name", "eth0", "netns", namespace)
                self.created.append(("link", self.link(index)))
                _ip("link", "set", self.link(index), "master", bridges[0 if index < self.left else 1], "up")
                _ip("-n", namespace, "addr", "add", f"{self.hosts[index]}/24", "dev", "eth0")
                _ip("-n", namespace, "link", "set", "eth0", "up")
                _ip("-n", namespace, "link", "set", "lo", "up")
        except (NamespacesUnavailable, OSError, subprocess.SubprocessError) as error:
            self.destroy()
            raise NamespacesUnavailable(f"{error}; {REQUIREMENTS}") from None

    def set_up(self, link: str, up: bool) -> None:
        _ip("link", "set", link, "up" if up else "down")

    def destroy(self) -> None:
        """Remove everything this network created (deleting a namespace removes its veths)."""
        for kind, name in reversed(self.created):
            subprocess.run(
                ["ip", "netns", "del", name] if kind == "netns" else ["ip", "link", "del", name],
                capture_output=True,
                timeout=20,
            )
        self.created.clear()
