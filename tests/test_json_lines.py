"""JSON Lines are read as views of the file (issue 11): the same pages, errors and line numbers as
when every line was copied out with ``bytes.split``, on arbitrary mixes of good, broken, blank and
whitespace-only lines, CRLF endings and a missing final newline."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import inputs
from verifier.inputs import _SEVERAL_DOCUMENTS, _syntax_error, locate, split_bodies
from verifier.pages import DecodedPage, ItemJson, decode_page
from verifier.testing import forge


def split_by_copying(data: bytes, source: str) -> Iterator[DecodedPage]:
    """``split_bodies`` as it was before the views: each non-blank line copied by ``bytes.split``."""
    error = _syntax_error(data)
    if error is None:
        yield decode_page(data, source)
        return
    lines = [(n, line) for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]
    if len(lines) > 1 and _syntax_error(lines[0][1]) is None:
        for number, line in lines:
            page = decode_page(line, f"{source}:{number}")
            line_error = _syntax_error(line) if page.errors and page.errors[0].startswith("not a JSON object: ") \
                else None
            if line_error is not None:
                yield DecodedPage(f"{source}:{number}",
                                  errors=[f"not JSON: {locate(line, line_error).replace('line 1, ', '')}"])
            else:
                yield page
        return
    yield DecodedPage(source, errors=["empty: no JSON in it" if not data.strip() else
                                      f"not a JSON document nor JSON Lines: {locate(data, error)}"
                                      + (_SEVERAL_DOCUMENTS if "trailing characters" in error else "")])


PAGE = json.dumps({"data": [{"encoded_event": "AA==", "sequence_id": "1"}], "meta": {"next_token": "t"}})
FRAGMENTS = [PAGE.encode(), b'{"data": []}', b"", b"   ", b"\t", b"\r", b"\x0b\x0c", b'{"data": [1, 2', b"[1, 2]",
             b"null", b'{"errors": [{"title": "Bad"}]}', b"not json", b'  {"data": []}  ', "é".encode(), b"\x00",
             # round 135 (a JSON Lines file is no longer decoded whole): JSON nested too deeply to read,
             # numbers out of range, lines of pretty-printed documents, a value cut across two lines
             b"[" * 5000 + b"]" * 5000, b"1e999", b'{"data": [1e999]}', b"{", b'  "data": []', b"}", b"[1,", b"2]",
             b"12", b'"text"']


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12), st.sampled_from([b"\n", b"\r\n"]), st.booleans())
def test_views_read_what_copies_read(lines, newline, final_newline):
    data = newline.join(lines) + (newline if final_newline else b"")
    assert [repr(p) for p in split_bodies(data, "f")] == [repr(p) for p in split_by_copying(data, "f")]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_views_read_arbitrary_bytes_as_copies_do(data):
    assert [repr(p) for p in split_bodies(data, "f")] == [repr(p) for p in split_by_copying(data, "f")]


def test_lines_are_numbered_in_the_file_and_blank_ones_skipped():
    data = b"\n".join([PAGE.encode(), b"", b"  ", b"broken {", PAGE.encode()]) + b"\n"
    pages = list(split_bodies(data, "f.jsonl"))
    assert [p.source for p in pages] == ["f.jsonl:1", "f.jsonl:4", "f.jsonl:5"]
    assert pages[1].errors and pages[1].errors[0].startswith("not JSON: ") and not pages[0].errors


def test_a_pages_items_are_not_tracked_by_the_collector():
    """An item, its signature and its key infos (a page holds about a hundred of each) are built
    untracked: they hold only texts and one another, never a cycle, and tracking each cost about
    600 instructions an event of the page's decode (round 129)."""
    item = {"encoded_event": "AA==", "sequence_id": "1", "message_event_signature": {
        "signature": "AA", "message_signing_key_info_list": [{"member_id": "1"}]}}
    page = decode_page(json.dumps({"data": [item, item]}).encode(), "page")
    assert len(page.entries) == 2
    for entry in page.entries:
        signature = entry.item.message_event_signature
        assert not any(gc.is_tracked(value) for value in (entry, entry.item, signature,
                                                          *signature.message_signing_key_info_list))


@pytest.mark.parametrize("shape", ["2.166", "2.167"])
def test_an_items_fields_are_declared_in_the_order_the_api_serves_them(shape):
    """msgspec looks each member's name up from the field after the last one matched: declared in
    the served order, a page's items decode with one or two tries a name (round 135: 770
    instructions an event less than in the old order)."""
    history = forge.build_conversation(3)
    served = list(forge.item_json(history.events[-1], shape))
    fields = iter(ItemJson.__struct_fields__)
    assert all(name in fields for name in served), (served, ItemJson.__struct_fields__)  # a subsequence


def test_a_json_lines_file_is_not_decoded_whole(monkeypatch):
    """Its first line parsing on its own and a second line after it, the whole file cannot parse:
    it is not decoded whole to learn that (round 135: that built the first line's page of objects
    only to fail on "trailing characters"). The syntax check still reads every other file whole."""
    checked: list[int] = []
    real = inputs._syntax_error

    def counting(data):
        checked.append(len(data))
        return real(data)

    monkeypatch.setattr(inputs, "_syntax_error", counting)
    lines = PAGE.encode() + b"\n" + PAGE.encode() + b"\n"
    assert [p.errors for p in split_bodies(lines, "f")] == [[], []] and checked == []
    pretty = json.dumps(json.loads(PAGE), indent=2).encode()
    assert [p.errors for p in split_bodies(pretty, "f")] == [[]] and checked == [len(pretty)]
