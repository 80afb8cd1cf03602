"""Only the compiled core is declared here; everything else about the project is in
pyproject.toml.

The extension is optional: where no C compiler (or no Python headers) is found, or the build
fails for any other reason, ``pip install .`` installs the pure-Python engine instead and says
so in its build log. ``MMKV_PURE_PYTHON=1`` at build time skips the extension altogether.
"""

import os

from setuptools import Extension, setup

ext_modules = []
if os.environ.get("MMKV_PURE_PYTHON", "") in ("", "0"):
    ext_modules.append(
        Extension(
            "mmkv._core",
            ["mmkv/_core.c"],
            depends=["mmkv/_crc.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    )

setup(ext_modules=ext_modules)
