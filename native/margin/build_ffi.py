"""cffi (API mode) build of the margin kernel as `crossclear.margin._kernel`.

setup.py picks this file up through its `native/*/build_ffi.py` glob.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def _declarations() -> str:
    # cffi's parser does not run the preprocessor: keep the #define-free part of the header.
    lines = []
    for line in (HERE / "margin_kernel.h").read_text().splitlines():
        if line.startswith("#"):
            continue
        lines.append(line)
    return "\n".join(lines)


ffibuilder = FFI()
ffibuilder.cdef(_declarations())
ffibuilder.set_source(
    "crossclear.margin._kernel",
    '#include "margin_kernel.h"',
    sources=[str((HERE / "margin_kernel.c").relative_to(REPO))],
    include_dirs=[str(HERE.relative_to(REPO))],
    extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fno-math-errno"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
