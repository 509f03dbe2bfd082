"""Decrypted contents are hostile input: they are read by the bounded reader with the SDK's rules, never
crash, and are judged as the SDK judges them (parsed or a parse error) — named structural cases and a
seeded mutation pass over SDK-made plaintexts, each encrypted and signed by the SDK and decrypted by
both sides."""

from __future__ import annotations

import random
import struct

import pytest
from sdk_conversation import History, keyring_json, make_user, sdk_decrypt

import verifier
from verifier.errors import MalformedEvent
from verifier.participant import IdentityKey, decode_content, participant_reviewers
from verifier.participant.crypto import secretbox_open
from verifier.wire import decode_event_b64

SDK_KIND = {"message": "Text", "reaction_add": "Reaction", "reaction_remove": "ReactionRemoved",
            "message_edit": "Edit", "mark_conversation_read": "MarkRead", "mark_conversation_unread": "MarkUnread"}


def fld(ttype: int, fid: int, payload: bytes) -> bytes:
    return struct.pack(">bh", ttype, fid) + payload


def st(*fields: bytes) -> bytes:
    return b"".join(fields) + b"\0"


def s(text: bytes | str) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack(">i", len(raw)) + raw


def lst(etype: int, *elements: bytes, count: int | None = None) -> bytes:
    return struct.pack(">bi", etype, len(elements) if count is None else count) + b"".join(elements)


def entry(member: int, *fields: bytes) -> bytes:
    """A MessageEntryHolder whose contents union sets ``member`` to a struct of ``fields``."""
    return st(fld(12, 1, st(fld(12, member, st(*fields)))))


TEXT = fld(11, 1, s("hi"))
CASES = {
    "text": (entry(1, TEXT), "message"),
    "no-contents": (st(), None),
    "empty-union": (st(fld(12, 1, st())), "malformed"),
    "only-unknown-member": (st(fld(12, 1, st(fld(12, 99, st())))), None),
    "two-members": (st(fld(12, 1, st(fld(12, 1, st(TEXT)), fld(12, 2, st())))), "malformed"),
    "same-member-twice": (st(fld(12, 1, st(fld(12, 1, st(TEXT)), fld(12, 1, st(TEXT))))), "malformed"),
    "truncated": (entry(1, TEXT)[:-2], "malformed"),
    "empty": (b"", "malformed"),
    "trailing-bytes": (entry(1, TEXT) + b"junk", "message"),
    "invalid-utf8-text": (entry(1, fld(11, 1, s(b"\xff\xfe"))), "malformed"),
    "unknown-field-non-utf8": (entry(1, TEXT, fld(11, 77, s(b"\xff"))), "message"),
    "wrong-wire-type-text": (entry(1, fld(8, 1, struct.pack(">i", 2) + b"hi")), "message"),
    "bool-byte-2": (entry(15, fld(2, 2, b"\x02")), "set_verified_status"),
    "attachment-unknown-element-dropped": (entry(1, TEXT, fld(15, 3, lst(12, st(fld(12, 99, st())),
                                                                          st(fld(12, 2, st(fld(11, 1, s("r")))))))),
                                           "message"),
    "attachment-two-members": (entry(1, TEXT, fld(15, 3, lst(12, st(fld(12, 2, st()), fld(12, 3, st()))))),
                               "malformed"),
    "quick-reply-unknown-inner": (entry(1, TEXT, fld(12, 8, st(fld(12, 1, st(fld(12, 5, st())))))), "message"),
    "quick-reply-ok": (entry(1, TEXT, fld(12, 8, st(fld(12, 2, st(fld(12, 1, st(fld(11, 1, s("q")))))))))
                       , "message"),
    "quick-reply-two-members": (entry(1, TEXT, fld(12, 8, st(fld(12, 1, st(fld(12, 1, st()))),
                                                             fld(12, 2, st(fld(12, 1, st())))))), "malformed"),
    "rich-text-entity": (entry(1, TEXT, fld(15, 2, lst(12, st(fld(8, 1, struct.pack(">i", 0)),
                                                               fld(12, 3, st(fld(12, 3, st(fld(11, 9, s("x")))))))))),
                         "message"),
    "additional-fields-map": (entry(1, TEXT, fld(13, 10, struct.pack(">bbi", 11, 11, 2) + s("k") + s("1")
                                                 + s("k") + s("2"))), "message"),
    "list-too-long": (entry(1, TEXT, fld(15, 2, lst(12, count=10_001))), "malformed"),
    "list-negative": (entry(1, TEXT, fld(15, 2, lst(12, count=-1))), "malformed"),
    "nested-70-deep": (entry(1, TEXT, b"".join(fld(12, 50, b"") for _ in range(70)) + b"\0" * 70), "malformed"),
    "invalid-type-code": (entry(1, TEXT, fld(9, 40, b"")), "malformed"),
    "void-field": (entry(1, TEXT, fld(1, 40, b"")), "malformed"),
    "string-longer-than-input": (entry(1, fld(11, 1, struct.pack(">i", 1 << 30))), "malformed"),
    "reaction": (entry(2, fld(11, 1, s("5")), fld(11, 2, s("👍"))), "reaction_add"),
    "edit": (entry(4, fld(11, 1, s("5")), fld(11, 2, s("new"))), "message_edit"),
    "mark-read": (entry(5, fld(11, 1, s("5")), fld(10, 2, struct.pack(">q", 7))), "mark_conversation_read"),
    "mark-unread": (entry(6, fld(11, 1, s("5"))), "mark_conversation_unread"),
    "pin": (entry(7, fld(11, 1, s("c"))), "pin_conversation"),
    "draft": (entry(12, fld(11, 2, s("x"))), "draft_message"),
    "accept-request-skips-all": (entry(13, fld(11, 1, s("ignored")), fld(15, 2, lst(8, b"\0\0\0\1"))),
                                 "accept_message_request"),
    "reply-with-bad-embedded-event": (entry(1, TEXT, fld(12, 4, st(fld(12, 8, st(fld(12, 7, st())))))), "malformed"),
    "reply-embedded-event-unknown-detail": (entry(1, TEXT, fld(12, 4, st(fld(12, 8, st(fld(12, 7, st(
        fld(12, 2, st())))))))), "message"),
}


def judge(plaintexts: list[bytes]):
    """(SDK result, our Opened) for each plaintext, sent as an SDK-signed message of one conversation."""
    a, b = make_user("1111", "1700000000001"), make_user("2222", "1700000000002")
    h = History("1111:2222")
    h.key_change(a, [a, b])
    made = [h.contents("case", a, p) for p in plaintexts]
    sdk = sdk_decrypt(b, h.b64s(), a, b)["by_index"]
    reviewers = participant_reviewers(IdentityKey.from_blob(b.blob))
    report = verifier.verify_pages([h.page()], verifier.Keyring.from_json(keyring_json(a, b)), reviewers=reviewers)
    index = {e.sequence_id: e.index for e in report.conversations[0].events}
    assert all(e.signature.status == "valid" for e in report.conversations[0].events)
    return [(sdk[i + 1], reviewers[1].opened[index[m.sequence_id]]) for i, m in enumerate(made)]


def agree(theirs: dict, ours) -> None:
    if "error" in theirs:
        assert "Content parse error" in theirs["error"], theirs
        assert ours.status == "malformed"
        return
    assert ours.status == "decrypted"
    assert SDK_KIND.get(ours.content.kind, "Unknown") == theirs["content"]["content_type"]
    if theirs["content"]["content_type"] == "Text":
        assert (ours.content.text or "") == theirs["content"]["text"]  # the SDK shows an absent text as ""


@pytest.fixture(scope="module")
def judged():
    names = list(CASES)
    return dict(zip(names, judge([CASES[n][0] for n in names])))


@pytest.mark.parametrize("name", list(CASES))
def test_structural_case_is_read_as_the_sdk_reads_it(judged, name):
    theirs, ours = judged[name]
    agree(theirs, ours)
    expected = CASES[name][1]
    if expected == "malformed":
        assert ours.status == "malformed"
    else:
        assert ours.content.kind == expected


def test_attachment_list_drops_unknown_elements_and_quick_reply_ignores_unknown_member():
    content = decode_content(CASES["attachment-unknown-element-dropped"][0])
    assert content.body["attachments"] == [("post", {"rest_id": "r"})]
    assert "quick_reply" not in decode_content(CASES["quick-reply-unknown-inner"][0]).body
    assert decode_content(CASES["quick-reply-ok"][0]).body["quick_reply"] == ("response", ("options", {"request_id": "q"}))


def _sdk_plaintexts() -> list[bytes]:
    """Plaintexts the SDK makes: text, reply (with its embedded raw event), reaction, edit."""
    a, b = make_user("1111", "1700000000001"), make_user("2222", "1700000000002")
    h = History("1111:2222")
    h.key_change(a, [a, b])
    m1 = h.text(a, "hello, world ✓")
    made = [m1, h.reply(b, "a reply", m1), h.react(b, m1, "🎉"), h.edit(a, m1, "edited"),
            h.react(b, m1, "🎉", remove=True)]
    out = []
    for m in made:
        body = decode_event_b64(m.b64)[1].body
        out.append(secretbox_open(h.keys[h.latest], body["contents"]))
    return out


def _mutants(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    corpus = _sdk_plaintexts()
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(corpus))
        for _step in range(rng.randint(1, 3)):
            op = rng.randrange(5)
            at = rng.randrange(len(data)) if data else 0
            if op == 0 and data:
                data[at] ^= 1 << rng.randrange(8)
            elif op == 1:
                data = data[:at]
            elif op == 2 and data:
                del data[at:at + rng.randint(1, 4)]
            elif op == 3:
                data[at:at] = bytes([rng.choice((0, 1, 2, 8, 11, 12, 15, 0x7f, 0xff))])
            elif op == 4 and len(data) > 8:
                start = rng.randrange(len(data) - 4)
                data[at:at] = data[start:start + rng.randint(2, 8)]
        out.append(bytes(data))
    return out


def test_seeded_mutations_of_sdk_plaintexts_are_judged_as_the_sdk_judges_them():
    mutants = _mutants(seed=10, count=300)
    results = judge(mutants)
    parsed = sum(ours.status == "decrypted" for _t, ours in results)
    for theirs, ours in results:
        agree(theirs, ours)
    assert 20 < parsed < len(mutants)  # both outcomes are exercised


@pytest.mark.parametrize("size", [0, 1, 39, 40])
def test_hostile_plaintext_never_escapes_as_anything_but_malformed(size):
    rng = random.Random(size)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64) + size))
        try:
            decode_content(data)
        except MalformedEvent:
            pass


def test_contents_that_do_not_authenticate_are_a_value_error():
    with pytest.raises(ValueError, match="authentication"):
        secretbox_open(bytes(32), bytes(64))
    with pytest.raises(ValueError, match="shorter"):
        secretbox_open(bytes(32), bytes(39))
