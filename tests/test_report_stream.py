"""The streamed JSON report's event batches: indented by ``msgspec.json.format`` itself (the batch
wrapped to the report's depth), the same text as formatting the batch alone and shifting its lines."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.report.machine import _json_safe
from verifier.report.stream import _indented

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


def formatted_alone_and_shifted(batch: list[object]) -> str:
    """The earlier way: the batch formatted on its own, then every line shifted to the report's depth."""
    text = msgspec.json.format(msgspec.json.encode(batch), indent=2).decode()  # "[\n  {...},\n  {...}\n]"
    return _json_safe(text[1:-2].replace("\n", "\n      "))


@settings(max_examples=300, deadline=None)
@given(st.lists(JSON_VALUES, min_size=1, max_size=6))
def test_a_batch_is_indented_as_formatting_it_alone_and_shifting_its_lines(batch):
    assert _indented(msgspec.json.Encoder(), batch) == formatted_alone_and_shifted(batch)


def test_strings_with_newlines_and_line_separators_stay_escaped():
    got = _indented(msgspec.json.Encoder(), [{"a": "x\ny\u2028z", "b": []}, {"c": {"d": [1, {}]}}])
    assert got == ('\n        {\n          "a": "x\\ny\\u2028z",\n          "b": []\n        },'
                   '\n        {\n          "c": {\n            "d": [\n              1,\n              {}\n'
                   '            ]\n          }\n        }')
