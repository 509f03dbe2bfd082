"""Every conformance vector as its own test id (the runner test checks the suite as a whole and
through the command line): a failing case names itself and hides no other."""

import pytest
from helpers import REPO

from verifier.vectors import discover, run_case

VECTORS = REPO / "vectors"
CASES = discover(VECTORS)


def test_the_suite_is_there():
    assert len(CASES) >= 400


@pytest.mark.parametrize("folder", CASES, ids=[c.relative_to(VECTORS).as_posix() for c in CASES])
def test_vector_case(folder):
    result = run_case(folder, VECTORS)
    assert result.passed, result.problems
