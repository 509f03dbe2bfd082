"""Every input-error path of ``verify`` and ``vectors``: exit 3, one line naming the input and the
reason, never a traceback; whatever could be read is still reported."""

from __future__ import annotations

import json

import pytest

from helpers import ALICE, ev, page
from test_hostile_text import run_main

GOOD = json.dumps(page(ev(seq=1))).encode()


@pytest.mark.parametrize("content,words", [
    (b"{not json", "not a JSON object"),
    (b"[1, 2]", "not a JSON object at the top level"),
    (b'{"data": []' + b", \"x\": " + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"errors": [{"title": "Forbidden", "detail": "no"}]}', "the API answered with an error instead of events"),
    (b'{"result_count": 0}', "not an events page"),
    (b'{"data": "nope"}', "`data` is a str, expected an array"),
    (b'{"data": [], "meta": 5}', "`meta` is a int, expected an object"),
    (b'{"data": [], "meta": {"conversation_key_events": 5}}', "`meta.conversation_key_events` is not an array"),
])
def test_page_input_errors(tmp_path, content, words):
    bad, good, ring = tmp_path / "bad.json", tmp_path / "good.json", tmp_path / "ring.json"
    bad.write_bytes(content)
    good.write_bytes(GOOD)
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry()]}))
    code, out, err = run_main(["verify", str(bad), str(good), "--keys", str(ring), "--format", "json"])
    assert code == 3 and err.count("\n") == 1 and words in err and str(bad) in err
    report = json.loads(out)  # the readable page is still verified and reported
    assert report["verdict"] == "fail" and [e["signature"]["status"] for c in report["conversations"]
                                            for e in c["events"]] == ["valid"]


@pytest.mark.parametrize("setup,words", [
    (lambda d: d / "missing.json", "cannot read"),
    (lambda d: d, "cannot read"),  # a directory without a manifest
])
def test_unreadable_page_files(tmp_path, setup, words):
    code, _out, err = run_main(["verify", str(setup(tmp_path))])
    assert code == 3 and words in err and err.count("\n") == 1


@pytest.mark.parametrize("ring_content,words", [
    (None, "cannot read"),
    (b"not json", "keyring"),
    (b'{"keys": [{"user_id": 5}]}', "lacks a string user_id"),
    (json.dumps([{**ALICE.keyring_entry(), "signing_public_key": "!!"}]).encode(), "entry 1 (user 1111"),
])
def test_keyring_input_errors(tmp_path, ring_content, words):
    good, ring = tmp_path / "good.json", tmp_path / "ring.json"
    good.write_bytes(GOOD)
    if ring_content is not None:
        ring.write_bytes(ring_content)
    code, _out, err = run_main(["verify", str(good), "--keys", str(ring)])
    assert code == 3 and words in err and err.count("\n") == 1


def test_oversized_file_and_unwritable_output(tmp_path):
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (2 * 1024 * 1024))
    code, _out, err = run_main(["verify", str(big), "--max-file-mb", "1"])
    assert code == 3 and "larger than the limit" in err
    good = tmp_path / "good.json"
    good.write_bytes(GOOD)
    code, _out, err = run_main(["verify", str(good), "--output", str(tmp_path / "no" / "such" / "dir" / "r.json")])
    assert code == 3 and "cannot write" in err and err.count("\n") == 1


def test_vectors_input_errors(tmp_path):
    assert run_main(["vectors", str(tmp_path / "missing")])[0] == 3
    assert run_main(["vectors", str(tmp_path)])[0] == 3  # no cases
    code, _out, err = run_main(["vectors", str(tmp_path), "--xfail", str(tmp_path / "nope.txt")])
    assert code == 3 and "cannot read --xfail" in err
