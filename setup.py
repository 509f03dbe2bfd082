"""Builds the optional compiled decoder (``verifier/_cfastwire.pyx``, issue 11).

Everything else is in pyproject.toml. The extension is optional: where Cython or a C compiler is
missing, or the build fails, the package installs without it and ``verifier.wire`` uses the
pure-Python ``fastwire`` (same events, about four times slower to decode).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

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
    source = Path(__file__).resolve().parent / "verifier" / "_cfastwire.pyx"
    if not source.is_file():  # a source tree without it (a trimmed sdist): pure Python
        _skipped(FileNotFoundError(str(source)))
        return []
    try:
        from Cython.Build import cythonize

        _write_source_digest(source)
        return cythonize([str(source.relative_to(Path.cwd()))], quiet=True)
    except Exception as exc:  # noqa: BLE001 - Cython missing or failing: install pure Python
        _skipped(exc)
        return []


def _write_source_digest(source: Path) -> None:
    """The module carries the digest of the source it was built from; ``verifier.wire`` refuses a
    build whose source has changed since (a stale in-tree build after an edit)."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    source.with_name("_cfastwire_source.pxi").write_text(f'SOURCE_SHA256 = "{digest}"\n')


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
