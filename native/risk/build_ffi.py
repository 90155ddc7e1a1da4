"""cffi (API mode) build of the risk kernel as `crossclear.risk._kernel`.

setup.py picks this file up through its `native/*/build_ffi.py` glob.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _declarations() -> str:
    # cffi's parser does not run the preprocessor: keep the #define-free part of the header.
    lines = []
    for line in (HERE / "risk_kernel.h").read_text().splitlines():
        if line.startswith("#"):
            continue
        lines.append(line)
    return "\n".join(lines)


ffibuilder = FFI()
ffibuilder.cdef(_declarations())
ffibuilder.set_source(
    "crossclear.risk._kernel",
    '#include "risk_kernel.h"',
    sources=[str((HERE / "risk_kernel.c").relative_to(REPO))],
    include_dirs=[str(HERE.relative_to(REPO))],
    extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fno-math-errno"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
