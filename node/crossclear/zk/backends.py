"""Pluggable Groth16 verifier backends.

A backend is any object with

    verify(key, proof, public_signals) -> bool
        True when the proof verifies, False when it is well-formed but does not; raises
        `MalformedProof` (one-line reason) when the input fails `check_well_formed` or a
        point is at infinity, off its curve or (B) outside the order-r subgroup. The backend
        checks curve and subgroup membership itself: `check_well_formed` does not.
    verify_batch(key, items) -> list[bool]
        items is a sequence of (proof, public_signals) under one key; one bool per item, in
        order. A malformed item (as above) is False (it never enters a pairing); when the combined check
        fails the backend finds the bad items, so a True is always an individually valid proof.

Backends register a zero-argument factory with `register_backend(name, factory)`;
`get_backend(name)` builds (once) and returns one. `py_ecc` is always present. If a module
`crossclear.zk._native_backend` exists it is imported on first use and may register
`native`; when its compiled extension is missing the import fails quietly (the reason is
kept in `optional_backend_errors()`) and py_ecc stays the default. The default backend is
`native` when registered, else `py_ecc`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Sequence
from typing import Protocol

from crossclear.zk.groth16 import Proof, VerificationKey

ProofItem = tuple[Proof, Sequence[int]]


class Groth16Backend(Protocol):
    def verify(self, key: VerificationKey, proof: Proof, public_signals: Sequence[int]) -> bool: ...

    def verify_batch(self, key: VerificationKey, items: Sequence[ProofItem]) -> list[bool]: ...


BackendFactory = Callable[[], Groth16Backend]

_OPTIONAL_MODULES = ("crossclear.zk._native_backend",)
_factories: dict[str, BackendFactory] = {}
_instances: dict[str, Groth16Backend] = {}
_optional_errors: dict[str, str] = {}
_optional_loaded = False


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make `name` available to `get_backend`; registering a name again replaces it."""
    _factories[name] = factory
    _instances.pop(name, None)


def load_optional_backends() -> None:
    """Import the optional backend modules once (they register themselves)."""
    global _optional_loaded
    if _optional_loaded:
        return
    _optional_loaded = True
    for module_name in _OPTIONAL_MODULES:
        try:
            if importlib.util.find_spec(module_name) is None:
                continue
            importlib.import_module(module_name)
        except ImportError as error:
            _optional_errors[module_name] = str(error)


def optional_backend_errors() -> dict[str, str]:
    """Why an optional backend module failed to import (empty when none did)."""
    load_optional_backends()
    return dict(_optional_errors)


def available_backends() -> list[str]:
    load_optional_backends()
    return sorted(_factories)


def default_backend_name() -> str:
    load_optional_backends()
    return "native" if "native" in _factories else "py_ecc"


def get_backend(name: str | None = None) -> Groth16Backend:
    """The backend called `name` (default: `default_backend_name()`); KeyError if unknown."""
    load_optional_backends()
    chosen = default_backend_name() if name is None else name
    if chosen not in _factories:
        raise KeyError(f"no Groth16 backend {chosen!r} (available: {', '.join(sorted(_factories))})")
    if chosen not in _instances:
        _instances[chosen] = _factories[chosen]()
    return _instances[chosen]


def _register_builtin() -> None:
    from crossclear.zk._py_ecc_backend import PyEccBackend

    register_backend("py_ecc", PyEccBackend)


_register_builtin()
