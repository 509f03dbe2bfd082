import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402

SLOW_ENV = "XCHAT_VERIFY_SLOW"


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true",
                     help="also run the tests marked slow (real clusters, browsers, PostgreSQL, long differential "
                          f"runs); CI does. Or set {SLOW_ENV}=1.")


def _run_slow(config) -> bool:
    return config.getoption("--slow") or os.environ.get(SLOW_ENV) == "1"


def pytest_report_header(config):
    if not _run_slow(config):
        return "the quick tier: tests marked slow are deselected (run them with --slow; CI runs everything)"
    return None


def pytest_collection_modifyitems(config, items):
    """The quick tier for the edit-test loop: everything but the slow tests. The full suite (``--slow``)
    is what CI and the README's test command run."""
    if _run_slow(config):
        return
    quick = [item for item in items if item.get_closest_marker("slow") is None]
    if len(quick) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("slow") is not None])
        items[:] = quick


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session (tests/pg.py)."""
    from pg import PostgresServer
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def ledger_target(request, tmp_path):
    """A fresh ledger of each backend: an SQLite file path, or a new PostgreSQL database URL."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.db")
    return request.getfixturevalue("postgres_server").new_database()
