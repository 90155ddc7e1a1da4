"""The devnet manifest (`devnet/.state/devnet.json`) and the lock that makes one devnet at a time.

The manifest is what other processes (nodes, the demo, tests) read to find the chains: chain
ids, RPC URLs, contract addresses, funded accounts and the node set's keys. It also records
the pid of the `devnet up` process, which `devnet down` signals.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from crossclear._paths import repo_root

MANIFEST_NAME = "devnet.json"
LOCK_NAME = "devnet.lock"
MANIFEST_VERSION = 1


def default_state_dir() -> Path:
    """`CROSSCLEAR_DEVNET_STATE`, else `<repo>/devnet/.state`."""
    configured = os.environ.get("CROSSCLEAR_DEVNET_STATE")
    return Path(configured) if configured else repo_root() / "devnet" / ".state"


def manifest_path(state_dir: Path) -> Path:
    """Where the manifest of the devnet using `state_dir` lives."""
    return state_dir / MANIFEST_NAME


def write_manifest(state_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest atomically (readers never see half a file)."""
    path = manifest_path(state_dir)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(partial, path)
    return path


def read_manifest(state_dir: Path) -> dict[str, Any] | None:
    """The manifest, or None when there is none (or it is unreadable)."""
    try:
        document: dict[str, Any] = json.loads(manifest_path(state_dir).read_text())
    except (OSError, ValueError):
        return None
    return document


def remove_manifest(state_dir: Path) -> None:
    """Delete the manifest once the devnet is down."""
    manifest_path(state_dir).unlink(missing_ok=True)


@dataclass
class DevnetLock:
    """An exclusive lock held by the running `devnet up` for its whole life.

    The kernel drops a flock when its holder dies, however it dies, so a stale manifest never
    blocks the next `up`.
    """

    path: Path
    """The lock file."""
    handle: TextIO | None = None
    """Open file while the lock is held."""

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False when another devnet runs."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        # The holder's pid, so `down` can stop a devnet that has not written its manifest yet.
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle
        return True

    def release(self) -> None:
        """Give the lock back."""
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def lock_holder_pid(state_dir: Path) -> int | None:
    """The pid written by the process holding the lock (None when unreadable)."""
    try:
        return int((state_dir / LOCK_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def devnet_running(state_dir: Path) -> bool:
    """True while some `devnet up` holds the lock of `state_dir`."""
    probe = DevnetLock(state_dir / LOCK_NAME)
    if not (state_dir / LOCK_NAME).exists():
        return False
    if probe.try_acquire():
        probe.release()
        return False
    return True


def kill_named_processes(manifest: dict[str, Any]) -> None:
    """Kill every chain, node and liquidator process group a manifest names (for `devnet down`
    when the `devnet up` that started them is gone or does not stop)."""
    entries = [
        *manifest.get("chains", []),
        *manifest.get("nodes", []),
        *([manifest["liquidator"]] if manifest.get("liquidator") else []),
    ]
    for entry in entries:
        pid = entry.get("pid")
        if isinstance(pid, int):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
