"""Builds the optional compiled decoder (``verifier/_cfastwire.pyx``, issue 11).

Everything else is in pyproject.toml. The extension is optional: where Cython or a C compiler is
missing, or the build fails, the package installs without it and ``verifier.wire`` uses the
pure-Python ``fastwire`` (same events, about four times slower to decode).
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """A build_ext whose failure is a warning, not a failed install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler, a broken toolchain: install pure Python
            _skipped(exc)

    def build_extension(self, ext):  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            _skipped(exc)


def _skipped(exc: Exception) -> None:
    print(f"xchat-verify: the compiled decoder was not built ({exc}); the pure-Python one is used",
          file=sys.stderr)


def _extensions() -> list:
    if os.environ.get("XCHAT_VERIFY_PURE_PYTHON") == "1":
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        _skipped(ImportError("Cython is not installed"))
        return []
    return cythonize(["verifier/_cfastwire.pyx"], quiet=True)


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
