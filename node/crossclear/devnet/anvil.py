"""One local anvil chain as a child process that never outlives us.

`Anvil(chain_id=...)` starts anvil on 127.0.0.1 at a free port (or the port given), waits
until its JSON-RPC answers, and stops it by killing its whole process group: on `.stop()`,
on leaving a `with` block, and at interpreter exit. `.restart()` brings it back on the same
port, which is how tests simulate an RPC outage. With `state_path`, anvil dumps its chain on
a graceful stop and loads it on restart, so the chain survives the outage.

The binary is `<repo>/node_modules/.bin/anvil` (the npm package pinned in package.json);
`CROSSCLEAR_ANVIL` overrides the path and `CROSSCLEAR_REPO_ROOT` the repo root.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from crossclear._net import LOOPBACK, free_tcp_port
from crossclear._paths import repo_root

#: The mnemonic anvil derives its funded dev accounts from unless told otherwise.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"

_READY_TIMEOUT_SECONDS = 30.0
_GRACEFUL_STOP_SECONDS = 5.0

# Every running instance, held strongly so that an instance the caller dropped without
# stopping is still stopped by the exit hook.
_running: set[Anvil] = set()
_running_lock = threading.Lock()


class AnvilError(RuntimeError):
    """anvil could not be found, did not start, or did not answer in time."""


def anvil_binary() -> Path:
    """The anvil executable: `CROSSCLEAR_ANVIL`, else the native binary npm installed, else the npm wrapper."""
    configured = os.environ.get("CROSSCLEAR_ANVIL")
    if configured:
        return Path(configured)
    root = repo_root()
    # The npm wrapper is a node script that spawns this binary; running it directly saves a
    # node process per chain and makes the process we signal the one that holds the port.
    native = root / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if native.is_file() and os.access(native, os.X_OK):
        return native
    return root / "node_modules" / ".bin" / "anvil"


def _set_parent_death_signal() -> None:
    # Runs in the child between fork and exec: if our process dies without cleaning up
    # (SIGKILL, crash), the kernel sends anvil SIGTERM instead of leaving an orphan chain.
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Anvil:
    """A local anvil chain on 127.0.0.1; use as a context manager or call `.start()` / `.stop()`."""

    def __init__(
        self,
        chain_id: int = 31337,
        *,
        port: int | None = None,
        block_time: float | None = None,
        slots_in_an_epoch: int | None = None,
        accounts: int = 10,
        mnemonic: str = DEFAULT_MNEMONIC,
        state_path: Path | None = None,
        log_path: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        if chain_id <= 0:
            raise ValueError(f"anvil chain id must be positive, got {chain_id}")
        if block_time is not None and block_time <= 0:
            raise ValueError(f"anvil block time must be positive seconds, got {block_time}")
        self.chain_id = chain_id
        self.block_time = block_time
        self.slots_in_an_epoch = slots_in_an_epoch
        self.accounts = accounts
        self.mnemonic = mnemonic
        self.state_path = state_path
        self.extra_args = extra_args
        self._port: int | None = port
        self._log_path = log_path
        self._owned_log_dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- identity ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port anvil listens on (fixed once started, kept across restarts)."""
        if self._port is None:
            raise AnvilError("anvil has no port yet: call start() first")
        return self._port

    @property
    def rpc_url(self) -> str:
        """The HTTP JSON-RPC endpoint."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The WebSocket JSON-RPC endpoint (anvil serves both on one port)."""
        return f"ws://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The anvil process id while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the anvil process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        """Where anvil's own output goes."""
        if self._log_path is None:
            self._owned_log_dir = tempfile.TemporaryDirectory(prefix="crossclear-anvil-")
            self._log_path = Path(self._owned_log_dir.name) / "anvil.log"
        return self._log_path

    def __repr__(self) -> str:
        where = self.rpc_url if self._port is not None else "not started"
        return f"Anvil(chain_id={self.chain_id}, {where}, running={self.running})"

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Anvil:
        """Start anvil and return once its RPC answers `eth_chainId` with our chain id."""
        if self.running:
            return self
        binary = anvil_binary()
        if not binary.exists():
            raise AnvilError(f"anvil not found at {binary}: run `make setup` (npm ci) first")
        # A port picked by the OS can be taken between picking and binding; retry with a new
        # one only on a first start without a requested port (a restart keeps its port).
        fixed_port = self._port is not None
        attempts = 1 if fixed_port else 3
        last_error: AnvilError | None = None
        for _ in range(attempts):
            if not fixed_port:
                self._port = free_tcp_port()
            try:
                self._launch(binary)
                return self
            except AnvilError as error:
                last_error = error
                self._kill()
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        """Stop anvil and every process it started; idempotent."""
        process = self._process
        if process is None:
            return
        if process.poll() is None and self.state_path is not None:
            # SIGTERM lets anvil dump its state file so a restart resumes the same chain.
            self._signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=_GRACEFUL_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        self._kill()

    def restart(self) -> Anvil:
        """Stop and start again on the same port (with `state_path`, on the same chain)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop anvil and remove the log folder this object created."""
        self.stop()
        if self._owned_log_dir is not None:
            self._owned_log_dir.cleanup()
            self._owned_log_dir = None
            self._log_path = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- JSON-RPC, for readiness checks and test helpers -----------------------------------------

    def rpc(self, method: str, params: list[object] | None = None, timeout_seconds: float = 10.0) -> object:
        """One JSON-RPC call over HTTP; raises AnvilError on an error answer."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
        request = urllib.request.Request(self.rpc_url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            raise AnvilError(f"anvil {method} failed: {answer['error']}")
        return answer.get("result")

    def mine(self, blocks: int = 1) -> None:
        """Mine `blocks` empty blocks now."""
        self.rpc("anvil_mine", [hex(blocks)])

    def block_number(self) -> int:
        """The current head block number."""
        result = self.rpc("eth_blockNumber")
        assert isinstance(result, str)
        return int(result, 16)

    # -- internals --------------------------------------------------------------------------

    def _arguments(self, binary: Path) -> list[str]:
        arguments = [
            str(binary),
            "--host", LOOPBACK,
            "--port", str(self.port),
            "--chain-id", str(self.chain_id),
            "--accounts", str(self.accounts),
            "--mnemonic", self.mnemonic,
        ]  # fmt: skip
        if self.block_time is not None:
            arguments += ["--block-time", _seconds(self.block_time)]
        if self.slots_in_an_epoch is not None:
            arguments += ["--slots-in-an-epoch", str(self.slots_in_an_epoch)]
        if self.state_path is not None:
            arguments += ["--state", str(self.state_path)]
        return arguments + list(self.extra_args)

    def _launch(self, binary: Path) -> None:
        log_path = self.log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        use_death_signal = threading.current_thread() is threading.main_thread()
        with open(log_path, "ab") as log:
            # A new session makes anvil (and the node wrapper's child, if the wrapper is used)
            # one process group we can kill as a whole.
            self._process = subprocess.Popen(
                self._arguments(binary),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # The death signal fires when the *thread* that forked exits, so only arm it
                # from the main thread, whose end is the end of the process.
                preexec_fn=_set_parent_death_signal if use_death_signal else None,
            )
        with _running_lock:
            _running.add(self)
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        process = self._process
        assert process is not None
        while True:
            if process.poll() is not None:
                raise AnvilError(
                    f"anvil (chain {self.chain_id}, port {self.port}) exited with status "
                    f"{process.returncode} while starting: {self._log_tail()}"
                )
            try:
                answer = self.rpc("eth_chainId", timeout_seconds=1.0)
            except (OSError, urllib.error.URLError, ValueError):
                answer = None
            if isinstance(answer, str):
                if int(answer, 16) != self.chain_id:
                    # Something else answers on this port: not our chain.
                    raise AnvilError(f"port {self.port} answers with chain id {int(answer, 16)}, not {self.chain_id}")
                return
            if time.monotonic() > deadline:
                raise AnvilError(f"anvil on port {self.port} did not answer within {_READY_TIMEOUT_SECONDS:.0f} s: {self._log_tail()}")
            time.sleep(0.05)

    def _kill(self) -> None:
        process = self._process
        if process is None:
            return
        self._signal_group(process, signal.SIGKILL)
        try:
            process.wait(timeout=_GRACEFUL_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        self._process = None
        with _running_lock:
            _running.discard(self)

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], signal_number: int) -> None:
        try:
            os.killpg(process.pid, signal_number)
        except (ProcessLookupError, PermissionError):
            pass

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        instances = list(_running)
    for instance in instances:
        instance.stop()
