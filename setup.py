"""Build hook: compiles every C extension under native/ with cffi in API mode.

Each native component has a `native/<component>/build_ffi.py` defining `ffibuilder`;
adding a component needs no change here.
"""

from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
cffi_modules = sorted(
    f"{path.relative_to(HERE).as_posix()}:ffibuilder"
    for path in HERE.glob("native/*/build_ffi.py")
)

setup(cffi_modules=cffi_modules)
