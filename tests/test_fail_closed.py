"""No false PASS: every path to exit 0 needs proof (trusted keys, events, a complete history), the
chain rules that a server cannot bend (positions, one start, out-of-band meta, replays), and
keyrings whose verdict does not depend on row order."""

from __future__ import annotations

import json

import pytest
from helpers import ALICE, BOB, CONV, MALLORY, codes, ev, events_of, keyring, page, sig_statuses, verify

import verifier
from verifier.cli import main
from verifier.testing.forge import Identity


def finding_codes(report, scope="run"):
    if scope == "run":
        return [f.code for f in report.findings]
    return [f.code for c in report.conversations for f in c.findings]


# ------------------------------------------------------------------ trusted keys
def test_no_keyring_never_passes_even_with_valid_signatures():
    report = verify(page(ev(seq=1)))
    assert sig_statuses(report) == ["valid"] and report.verdict == "fail"
    assert finding_codes(report) == ["no_trusted_keys"]
    assert report.conversations[0].verdict == "fail"  # a conversation passes only on a sound run


def test_a_forged_event_with_its_own_embedded_key_fails_without_a_keyring():
    forged = ev(seq=1, sender=MALLORY, embed_keys=[MALLORY])
    assert verify(page(forged)).verdict == "fail"
    assert verify(page(forged), ring=keyring(ALICE)).verdict == "fail"


def test_allow_embedded_keys_is_the_explicit_opt_in_and_says_so():
    report = verify(page(ev(seq=1)), allow_embedded_keys=True)
    assert report.verdict == "pass"
    assert [(f.code, f.severity) for f in report.findings] == [("no_trusted_keys", "info")]
    assert not report.proof.keys_authenticated
    assert "NOT authenticated" in verifier.report.render(report, "text").splitlines()[-1]


def test_the_html_body_of_an_embedded_keys_pass_is_not_an_all_clear():
    """r109: the Problems section of an --allow-embedded-keys PASS said "No errors or warnings."
    under a banner saying the keys are NOT authenticated; a pass on trusted keys still says it."""
    import re
    report = verify(page(ev(seq=1)), allow_embedded_keys=True)
    html = verifier.report.render(report, "html")
    problems = re.search(r'<section class="card" id="problems">.*?</section>', html).group(0)
    assert "No errors or warnings." not in problems
    assert "NOT an all-clear: signer keys NOT authenticated" in problems
    trusted = verifier.report.render(verify(page(ev(seq=1)), ring=keyring(ALICE)), "html")
    assert "No errors or warnings." in trusted and "NOT an all-clear" not in trusted


MALLORY_AS_ALICE = Identity.from_seed("1111", "999", "mallory")  # Alice's id, a version the keyring lacks


def test_a_keyring_with_allow_embedded_keys_does_not_claim_every_key_authenticated():
    """Review 37: an event under a version the keyring lacks, checked with its own key, passed as
    --allow-embedded-keys allows; the proof said every signer key was authenticated."""
    stranger = ev(seq=3, prev=2, sender=MALLORY_AS_ALICE, embed_keys=[MALLORY_AS_ALICE])
    report = verify(page(stranger, ev(seq=2, prev=1, sender=BOB), ev(seq=1)), ring=keyring(ALICE, BOB),
                    allow_embedded_keys=True)
    assert report.verdict == "pass" and report.key_source == "keyring"
    assert not report.proof.keys_authenticated and report.proof.embedded_keys == 1
    last = verifier.report.render(report, "text").splitlines()[-1]
    assert "1 signature(s) checked with a key NOT authenticated (taken from the event), the others with keys " \
           "from the keyring" in last
    assert "1 signature(s) checked with a key NOT authenticated" in verifier.report.render(report, "html")
    trusted = verify(page(ev(seq=2, prev=1, sender=BOB), ev(seq=1)), ring=keyring(ALICE, BOB), allow_embedded_keys=True)
    assert trusted.proof.keys_authenticated and trusted.proof.embedded_keys == 0


# ------------------------------------------------------------------ nothing proven
def test_empty_input_and_empty_page_never_pass():
    for body in ({"data": []}, {"meta": {"result_count": 0}}):
        report = verify(body, ring=keyring(ALICE))
        assert report.verdict == "fail" and finding_codes(report) == ["no_events"]
        assert verify(body, ring=keyring(ALICE), allow_empty=True).verdict == "pass"


def test_events_with_no_provable_signature_never_pass():
    key_change = ev("ConversationKeyChangeEvent", {"conversation_key_version": "42"},
                    conversation_keys={"42": bytes(32)})
    report = verify(page(key_change), ring=keyring(ALICE))
    assert sig_statuses(report) == ["needs_conversation_key"]
    assert report.verdict == "fail" and finding_codes(report, "conversation") == ["nothing_proven"]
    assert verify(page(key_change), ring=keyring(ALICE), conversation_keys={"42": bytes(32)}).verdict == "pass"


@pytest.mark.parametrize("body,words", [
    ({"errors": [{"title": "Forbidden", "detail": "You are not permitted to perform this action.",
                  "type": "about:blank"}]}, "Forbidden - You are not permitted"),
    ({}, "not an events page"),
    ({"result": []}, "not an events page"),
])
def test_error_bodies_and_foreign_shapes_are_input_errors(tmp_path, capsys, body, words):
    p = tmp_path / "p.json"
    p.write_text(json.dumps(body))
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry()]}))
    assert main(["verify", str(p), "--keys", str(ring), "--allow-empty", "--format", "json"]) == 3
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_incomplete_history_fails_unless_allowed():
    v = verifier.Verification()
    v.add_page(page(ev(seq=2, prev=1)))
    v.mark_incomplete(CONV, "page limit 1 reached (--max-pages)")
    report = v.finish(keyring(ALICE))
    conv = report.conversations[0]
    assert report.verdict == "fail" and not conv.complete and not report.proof.complete
    assert [f.code for f in conv.findings] == ["incomplete"] and "--max-pages" in conv.findings[0].message
    allowed = verifier.Verification(allow_partial=True)
    allowed.add_page(page(ev(seq=2, prev=1)))
    allowed.mark_incomplete(CONV, "interrupted")
    assert allowed.finish(keyring(ALICE)).verdict == "pass"


def test_expected_conversation_without_events_is_reported_and_fails():
    v = verifier.Verification()
    v.expect_conversation("2222:1111")
    report = v.finish(keyring(ALICE))
    assert [c.conversation_id for c in report.conversations] == ["1111:2222"]
    assert finding_codes(report, "conversation") == ["no_events"] and report.verdict == "fail"


def test_verdict_line_counts_what_was_proven():
    key_change = ev("ConversationKeyChangeEvent", {"conversation_key_version": "42"}, seq=1,
                    conversation_keys={"42": bytes(32)})
    report = verify(page(ev(seq=3, prev=2), ev(seq=2, prev=1), key_change), ring=keyring(ALICE))
    line = verifier.report.render(report, "text").splitlines()[-1]
    assert "2 of 3 signatures proven; 1 need a conversation key" in line and line.startswith("verdict: PASS")



@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_a_pass_on_nothing_proven_says_it_was_accepted_with_allow_empty(fmt):
    """Round 100 (new-user walk): with --allow-empty, a history whose only event was not proven read
    "PASS — ...; 0 of 1 signatures proven; ...; signer keys from the keyring", the opt-in stated
    nowhere (--allow-partial says "history incomplete", embedded keys "NOT authenticated")."""
    import verifier.report
    key_change = ev("ConversationKeyChangeEvent", {"conversation_key_version": "42"}, seq=1,
                    conversation_keys={"42": bytes(32)})
    report = verify(page(key_change), ring=keyring(ALICE), allow_empty=True)
    assert report.verdict == "pass"
    def shown(r):  # as the reader sees it (markdown escapes the parentheses)
        return verifier.report.render(r, fmt).replace("\\", "")
    assert "1 conversation(s) empty or with nothing proven, accepted (--allow-empty)" in shown(report)
    empty = verify({"data": [], "meta": {"result_count": 0}}, ring=keyring(ALICE), allow_empty=True)
    assert empty.verdict == "pass" and "no events, accepted (--allow-empty)" in shown(empty)
    proven = verify(page(ev(seq=2, prev=1), key_change), ring=keyring(ALICE), allow_empty=True)
    assert proven.verdict == "pass" and "--allow-empty" not in shown(proven)


def test_a_fail_never_says_an_emptiness_was_accepted(tmp_path, capsys):
    """r109: a conversation with nothing proven that failed for another reason (a key conflict),
    and an empty run with an unreadable input, read "..., accepted (--allow-empty)" on a FAIL."""
    import verifier.report
    key_change = ev("ConversationKeyChangeEvent", {"conversation_key_version": "42"}, seq=1,
                    conversation_keys={"42": bytes(32)})
    report = verify(page(ev(seq=2, prev=1, sender=MALLORY), key_change), ring=keyring(ALICE), allow_empty=True)
    line = verifier.report.render(report, "text").splitlines()[-1]
    assert report.verdict == "fail" and "accepted" not in line
    assert line.endswith("1 conversation(s) empty or with nothing proven (allowed by --allow-empty), failing for "
                         "another reason")
    empty, ring = tmp_path / "empty.json", tmp_path / "ring.json"
    empty.write_text(json.dumps({"data": [], "meta": {"result_count": 0}}))
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry()]}))
    assert main(["verify", str(empty), str(tmp_path / "missing.json"), "--keys", str(ring), "--allow-empty"]) == 3
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("verdict: FAIL") and "accepted" not in line
    assert "no events (allowed by --allow-empty; the run fails for another reason)" in line


# ------------------------------------------------------------------ chain
def test_leading_zeros_make_a_conflict_not_two_events():
    from verifier.testing.forge import forge_event
    body = {"contents": b"\x01" * 40, "conversation_key_version": "1001"}
    a = forge_event(ALICE, "MessageCreateEvent", body, conversation_id=CONV, sequence_id="0123", message_id="a")
    b = forge_event(ALICE, "MessageCreateEvent", body, conversation_id=CONV, sequence_id="123", message_id="b")
    report = verify(page(a, b), ring=keyring(ALICE))
    assert [e.chain.status for e in events_of(report)] == ["conflict", "conflict"]


def test_replay_of_a_signed_event_at_a_new_position():
    original = ev(seq=1, message_id="m-1")
    replayed = ev(seq=2, prev=1, message_id="m-1")  # same signed message id, new unsigned position
    report = verify(page(replayed, original), ring=keyring(ALICE))
    assert sig_statuses(report) == ["valid", "valid"]
    replay = [f for e in events_of(report) for f in e.findings if f.code == "replay"]
    assert len(replay) == 1 and report.verdict == "fail"
    assert events_of(report)[0].findings[-1].code == "replay"  # the later copy


def test_meta_entry_that_is_not_a_key_change_is_an_error():
    stray = ev(seq=9)
    report = verify(page(ev(seq=2, prev=1), ev(seq=1), meta_events=[stray]), ring=keyring(ALICE))
    assert "meta_not_key_change" in codes(report) and report.verdict == "fail"


def test_meta_key_change_neither_anchors_nor_excuses():
    kc = ev("ConversationKeyChangeEvent", {"conversation_key_version": "42"}, seq=1,
            conversation_keys={"42": bytes(32)})
    report = verify(page(ev(seq=3, prev=2), ev(seq=2, prev=1), meta_events=[kc]), ring=keyring(ALICE),
                    conversation_keys={"42": bytes(32)})
    chain = {e.sequence_id: e.chain.status for e in events_of(report)}
    assert sorted(chain.values()) == ["linked", "out_of_band", "start"]
    report = verify(page(ev(seq=5, prev=4), ev(seq=3, prev=1), meta_events=[kc]), ring=keyring(ALICE),
                    conversation_keys={"42": bytes(32)})
    assert sorted(e.chain.status for e in events_of(report)) == ["gap", "out_of_band", "start"]


def test_previous_id_is_cross_checked_when_previous_sequence_id_is_also_present():
    forged = ev(seq=2, prev=1)
    body = page(forged)
    body["data"][0]["previous_id"] = "999"
    report = verify(body, ring=keyring(ALICE))
    assert any("previous_id differs" in f.message for f in events_of(report)[0].findings)


# ------------------------------------------------------------------ keys
def test_unusable_keyring_entry_is_an_input_error_naming_it(tmp_path, capsys):
    ring = tmp_path / "ring.json"
    bad = {**BOB.keyring_entry(), "signing_public_key": "BAAAAAAA"}
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry(), bad]}))
    p = tmp_path / "p.json"
    p.write_text(json.dumps(page(ev(seq=1))))
    assert main(["verify", str(p), "--keys", str(ring)]) == 3
    err = capsys.readouterr().err
    assert "entry 2 (user 2222 version 7)" in err and err.count("\n") == 1


def test_duplicate_rows_do_not_make_the_verdict_depend_on_order():
    good = ALICE.keyring_entry()
    bad_binding = {**ALICE.keyring_entry(), "identity_public_key_signature": BOB.keyring_row()["identity_public_key_signature"]}
    for rows in ([good, bad_binding], [bad_binding, good]):
        ring = verifier.Keyring.from_json(json.dumps(rows))
        assert ring.lookup("1111", "1").status == "ok"
        assert sig_statuses(verify(page(ev(seq=1)), ring=ring)) == ["valid"]
    other = {**MALLORY.keyring_entry()}
    for rows in ([good, other], [other, good]):
        ring = verifier.Keyring.from_json(json.dumps(rows))
        assert ring.lookup("1111", "1").status == "conflict"
        assert sig_statuses(verify(page(ev(seq=1)), ring=ring)) == ["unknown_key"]


def test_der_binding_is_key_binding_invalid_as_in_the_sdk():
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    entry = ALICE.keyring_entry()
    der = ALICE.signing.sign(base64.b64decode(entry["public_key"]), ec.ECDSA(hashes.SHA256()))
    entry["identity_public_key_signature"] = base64.b64encode(der).decode()
    ring = verifier.Keyring.from_json(json.dumps([entry]))
    assert ring.lookup("1111", "1").status == "key_binding_invalid"
    assert sig_statuses(verify(page(ev(seq=1)), ring=ring)) == ["key_binding_invalid"]


def test_a_key_response_for_one_user_cannot_give_keys_for_another():
    bodies = {ALICE.user_id: {"data": [ALICE.keyring_row(), {**BOB.keyring_row(), "user_id": BOB.user_id}]}}
    ring = verifier.Keyring.from_public_key_bodies(bodies)
    assert ring.lookup(BOB.user_id, BOB.version) is None and ring.lookup("1111", "1").status == "ok"
    report = verify(page(ev(seq=1), ev(seq=2, prev=1, sender=BOB)), ring=ring)
    assert [f.code for f in report.findings] == ["key_row_foreign_user"] and report.verdict == "fail"
    with pytest.raises(ValueError, match="include a row for user '2222'"):
        verifier.Keyring.from_json(json.dumps(bodies))


def test_unusable_directory_row_is_an_input_error_and_the_rest_still_counts():
    bodies = {ALICE.user_id: {"data": [ALICE.keyring_row(), {**ALICE.keyring_row(), "public_key_version": "2",
                                                               "signing_public_key": "AAAA"}]}}
    ring = verifier.Keyring.from_public_key_bodies(bodies)
    report = verify(page(ev(seq=1)), ring=ring)
    assert sig_statuses(report) == ["valid"] and not report.complete
    assert any("row 2 (version 2)" in e for i in report.inputs for e in i.errors)


@pytest.mark.parametrize("name", ["allow_embedded_keys", "allow_empty", "allow_partial", "strict"])
@pytest.mark.parametrize("value", ["false", "0", 0, None])
def test_an_opt_in_is_a_bool(name, value):
    """Round 88: the fail-closed opt-ins took any truthy value: ``allow_partial="false"`` (a
    configuration's text) allowed a history that says it goes on, and it passed."""
    with pytest.raises(verifier.UsageError, match=f"{name} must be True or False"):
        verifier.verify_pages([page(ev(seq=1))], keyring(ALICE), **{name: value})
    with pytest.raises(verifier.UsageError, match=f"{name} must be True or False"):
        verifier.Verification(**{name: value})


@pytest.mark.parametrize("name, value", [("workers", "2"), ("workers", 0), ("workers", True), ("workers", 2.0),
                                         ("expected_conversation_id", 5), ("expected_conversation_id", b"1:2"),
                                         ("limits", None), ("limits", {"max_depth": 8})])
def test_an_option_of_the_wrong_type_is_a_usage_error(name, value):
    """r109: ``workers="2"``, ``expected_conversation_id=5`` and ``limits=None`` were raw TypeErrors
    and AttributeErrors from inside the engine (docs/api.md: errors raised on purpose derive from
    XChatVerifyError, one line)."""
    for call in (lambda: verifier.verify_pages([page(ev(seq=1))], keyring(ALICE), **{name: value}),
                 lambda: verifier.Verification(**{name: value})):
        with pytest.raises(verifier.UsageError, match=f"^{name} must be ") as caught:
            call()
        assert "\n" not in str(caught.value)
    good = {"workers": 2, "expected_conversation_id": CONV, "limits": verifier.Limits()}[name]
    assert verifier.verify_pages([page(ev(seq=1))], keyring(ALICE), **{name: good}).verdict == "pass"


def test_parse_conversation_keys_refuses_one_string_and_values_that_are_not_text():
    """r109: one string was iterated, each character taken for a VERSION=BASE64 option ("got '1'")."""
    import base64

    from verifier.inputs import parse_conversation_keys
    value = "42=" + base64.b64encode(bytes(32)).decode()
    assert parse_conversation_keys([value]) == {"42": bytes(32)}
    with pytest.raises(verifier.UsageError, match="takes a sequence of VERSION=BASE64 values, not one str"):
        parse_conversation_keys(value)
    with pytest.raises(verifier.UsageError, match="expects VERSION=BASE64 text, got int 42"):
        parse_conversation_keys([42])


def test_the_html_body_of_an_allow_empty_pass_is_not_an_all_clear():
    """r111: the Problems section of an --allow-empty PASS that proved nothing said "No errors or
    warnings." (r109's caveats covered unauthenticated keys and incomplete histories only)."""
    import re
    key_change = ev("ConversationKeyChangeEvent", {"conversation_key_version": "42"}, seq=1,
                    conversation_keys={"42": bytes(32)})
    for report in (verify(page(key_change), ring=keyring(ALICE), allow_empty=True),
                   verify({"data": [], "meta": {"result_count": 0}}, ring=keyring(ALICE), allow_empty=True)):
        assert report.verdict == "pass"
        html = verifier.report.render(report, "html")
        problems = re.search(r'<section class="card" id="problems">.*?</section>', html).group(0)
        assert "No errors or warnings." not in problems
        assert "NOT an all-clear: a history with no event, or nothing proven, accepted (--allow-empty)" in problems
    proven = verify(page(ev(seq=2, prev=1), key_change), ring=keyring(ALICE), allow_empty=True)
    assert "NOT an all-clear" not in verifier.report.render(proven, "html")
