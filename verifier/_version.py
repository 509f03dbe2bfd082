"""The package version, in one place: read by pyproject.toml (setuptools dynamic version) and by
the code (``xchat-verify --version``, reports, evidence manifests). Imports nothing."""

__version__ = "0.3.1.dev0"
