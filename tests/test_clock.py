"""verifier.clock: ISO-8601 times read the same on every supported Python."""
import pytest

from verifier.clock import from_iso
from verifier.envelope import iso_to_ms


@pytest.mark.parametrize(("text", "micros"), [
    ("2026-01-01T00:00:00.1+00:00", 100000), ("2026-01-01T00:00:00.12+00:00", 120000),
    ("2026-01-01T00:00:00.1234+00:00", 123400), ("2026-01-01T00:00:00.1234567+00:00", 123456),
    ("2026-01-01T00:00:00.123+00:00", 123000), ("2026-01-01T00:00:00+00:00", 0),
])
def test_from_iso_reads_any_fraction_on_every_python(text, micros):
    """Python 3.10's fromisoformat read only 3 or 6 digits of a fraction (a report then depended on
    the Python that made it); 3.11's reads any number, cut to microseconds."""
    assert from_iso(text).microsecond == micros
    assert iso_to_ms(text.replace("+00:00", "Z")) == 1767225600000 + micros // 1000


@pytest.mark.parametrize("text", ["2026-01-01T00:00:00.x+00:00", "not a time"])
def test_from_iso_refuses_what_is_not_a_time(text):
    with pytest.raises(ValueError):
        from_iso(text)
