# Type stub for the cffi extension built from native/bn254/build_ffi.py (cffi objects are untyped).
from typing import Any

ffi: Any
lib: Any
