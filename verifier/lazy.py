"""Names a package imports only when first used (PEP 562): the network stack for ``import verifier``,
each report format's module for ``verifier.report``. Why: every module imported costs each run its
start-up, and most runs use few of them (tests/test_startup.py pins what a ``verify`` loads)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(package: str, names: Mapping[str, str], namespace: dict[str, Any],
                    submodules: Collection[str] = ()) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__getattr__`` and ``__dir__`` for ``names`` (each name: its module in the
    package), the module imported when one of its names is first read, the value then kept in the
    package's ``namespace`` (read directly from then on); and for ``submodules``, the package's
    modules that were its attributes when it imported them all (``verifier.report.machine``)."""

    def get(name: str) -> Any:
        if name in submodules:
            return import_module(f".{name}", package)  # (the import sets the attribute: called once)
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f".{module}", package), name)
        namespace[name] = value
        return value

    def listed() -> list[str]:
        """The lazy names are listed too, without being imported."""
        return sorted({*namespace, *names, *submodules})
    return get, listed
