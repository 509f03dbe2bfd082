"""Input text can neither restyle, fake nor crash a report, in any format; the whole CLI, fed
arbitrary files and arguments, exits 0/1/2/3 with at most one line of error and never a traceback."""

from __future__ import annotations

import base64
import io
import json
import os
import xml.etree.ElementTree as ET
from contextlib import redirect_stderr, redirect_stdout
from urllib.parse import quote

import pytest
from helpers import ALICE, REPO, ev, page
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier.cli import main
from verifier.report import FORMATS

EVIL = "\x1b[2J\x1b]0;pwned\x07[bold red]verdict: PASS[/]\r\n\u202eevil\u200b|<script>x</script>`\x9b31m"
DANGEROUS = ["\x1b", "\x07", "\r", "\u202e", "\u200b", "\x9b"]


@pytest.fixture()
def evil_files(tmp_path):
    forged = ev(seq=2, prev=1)
    body = page(forged, errors=[{"title": EVIL, "detail": EVIL, "type": "about:blank"}])
    item = body["data"][0]
    item["sender_id"] = EVIL  # an envelope mismatch whose message quotes the hostile text
    item["sequence_id"] = EVIL
    body["data"].append({"encoded_event": base64.b64encode(b"\x0b\x00\x01\x00\x00\x00\x03" + EVIL.encode()[:3]
                                                           + b"\x00").decode(), "conversation_id": EVIL})
    p = tmp_path / "evil.json"
    p.write_text(json.dumps(body))
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry()]}))
    return p, ring


def run_main(args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse usage errors and --help
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
def test_hostile_strings_are_escaped_in_every_format(evil_files, fmt):
    p, ring = evil_files
    code, out, err = run_main(["verify", str(p), "--keys", str(ring), "--format", fmt])
    assert code == 1
    for char in DANGEROUS:
        assert char not in out and char not in err, (fmt, repr(char))
    if fmt in ("json", "sarif"):
        json.loads(out)  # escaping keeps the document valid and the strings equal
    if fmt == "json":
        data = json.loads(out)
        assert data["inputs"][0]["api_errors"][0]["title"] == EVIL  # the data itself is unchanged
    if fmt == "ndjson":
        assert all(json.loads(line) for line in out.splitlines())
    if fmt == "junit":
        ET.fromstring(out)
    if fmt == "text":
        assert out.splitlines()[-1].startswith("verdict: FAIL")
        assert "[bold red]verdict: PASS[/]" in out  # shown as text, not applied as markup
    if fmt == "markdown":
        assert "<script>" not in out and "\\|" in out


def test_markdown_hints_show_commands_as_code_and_hostile_text_stays_escaped(evil_files):
    """A hint's `keys fetch` was escaped into literal backticks; the hint is our vocabulary and now
    reads as code, while the same characters from an event or a server stay escaped."""
    p, _ring = evil_files
    code, out, _err = run_main(["verify", str(p), "--format", "markdown"])  # no --keys: no_trusted_keys
    assert code == 1
    hint = next(line for line in out.splitlines() if line.startswith("| error | `no_trusted_keys`"))
    assert "Pass `--keys` \\(e.g. from `keys fetch`\\) or `--allow-embedded-keys`" in hint
    assert "\\`keys fetch\\`" not in out
    assert "\\|&lt;script&gt;x&lt;/script&gt;\\`" in out and "<script>" not in out  # the event's text


def test_hostile_file_name_and_invalid_utf8_page(tmp_path):
    evil_name = tmp_path / "a\x1b[31mb\u202e.json"
    evil_name.write_bytes(b'{"data": [{"encoded_event": "\xff\xfe"}]}')
    code, out, err = run_main(["verify", str(evil_name), "--format", "text"])
    assert code == 3 and err.count("\n") == 1 and "Invalid UTF-8" in err
    for char in DANGEROUS:
        assert char not in out + err


NOT_UTF8 = "\udcff"  # how Python hands over the byte 0xff of a file name that is not UTF-8


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_name_that_is_not_utf8_is_escaped_alike_in_every_format(tmp_path, fmt):
    """Review: such a name ended json, ndjson and sarif runs as an internal error (UnicodeEncodeError,
    exit 3, no report). Every format shows it as the text report does, as ``\\udcff``."""
    read = tmp_path / f"p{NOT_UTF8}.json"
    read.write_bytes((REPO / "examples" / "conversation" / "page-1.json").read_bytes())
    missing = tmp_path / f"missing{NOT_UTF8}.json"
    out = tmp_path / f"report.{fmt}"
    code, _, err = run_main(["verify", str(read), str(missing), "--keys", str(REPO / "examples" / "keyring.json"),
                             "--format", fmt, "-o", str(out)])
    assert code == 3 and "internal error" not in err, err  # the missing file: an input error
    text = out.read_bytes().decode("utf-8")  # strict: no lone surrogate, no raw 0xff
    shown = [f"{tmp_path}/p\\udcff.json", f"{tmp_path}/missing\\udcff.json"]
    if fmt == "json":
        assert [i["source"] for i in json.loads(text)["inputs"]] == shown
    elif fmt == "ndjson":
        assert [i["source"] for i in json.loads(text.splitlines()[-1])["inputs"]] == shown
    elif fmt == "sarif":
        uris = {loc["physicalLocation"]["artifactLocation"]["uri"]
                for r in json.loads(text)["runs"][0]["results"] for loc in r["locations"]}
        assert uris == {quote(name) for name in shown}  # a URI reference: the backslash is %5C (round 80)
    else:  # the others name the unreadable input only (markdown escapes its backslash once more)
        assert ("missing\\\\udcff.json" if fmt == "markdown" else "missing\\udcff.json") in text
    assert f"{tmp_path}/missing\\udcff.json: cannot read it" in err


# ------------------------------------------------------------------ the CLI, fuzzed
OPTIONS = ["--keys", "--format", "--output", "--strict", "--conversation-key", "--allow-embedded-keys",
           "--allow-empty", "--allow-partial", "--workers", "--max-file-mb", "-", "--help", "verify",
           "vectors", "keys", "audit", "--xfail", "1=AAAA", "json", "text", "0", "-1", "99999999999"]


def file_contents():
    valid = json.dumps(page(ev(seq=2, prev=1), ev(seq=1))).encode()
    return st.one_of(
        st.binary(max_size=300),
        st.just(valid),
        st.builds(lambda cut, junk: valid[:cut] + junk, st.integers(0, len(valid)), st.binary(max_size=20)),
        st.just(valid + b"\n" + valid + b"\n{,}\n"),
        st.just(json.dumps({"keys": [ALICE.keyring_entry()]}).encode()),
        st.just(b'{"errors": [{"title": "\\u001b[2J"}]}'),
        st.just(b"\xef\xbb\xbf" + valid),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(file_contents(), min_size=1, max_size=3),
       words=st.lists(st.one_of(st.sampled_from(OPTIONS), st.text(max_size=12)), max_size=6),
       command=st.sampled_from([["verify"], ["verify"], ["vectors"], []]))
@pytest.mark.slow
def test_cli_never_crashes_on_arbitrary_files_and_arguments(tmp_path, files, words, command):
    paths = []
    for i, content in enumerate(files):
        path = tmp_path / f"f{i}.json"
        path.write_bytes(content)
        paths.append(str(path))
    argv = command + paths + [w.replace("\x00", "") for w in words]
    if "--output" in argv or "-o" in argv:
        argv = [a if a not in ("--output", "-o") else "--format" for a in argv]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, out, err = run_main(argv)
    finally:
        os.chdir(cwd)
    assert code in (0, 1, 2, 3), (argv, code, err)
    assert "Traceback" not in out + err and "internal error" not in err, (argv, err)


def test_a_token_cut_before_it_is_scrubbed_is_still_redacted():
    """Review: server text cut before the token was scrubbed kept all of it but the last character
    (a 403 body cut at 300 bytes; an errors[] problem cut at 200 characters) in stderr, reports and
    evidence. Now the body is scrubbed before its cut, and a token prefix of 8 or more characters
    where text was cut is redacted too."""
    from verifier.apibodies import _problem_text
    from verifier.fetch import XChatClient
    from verifier.paging import problem_summary
    from verifier.sanitize import redact_secret

    token = "Zq9xLk3mPp0aBcDeFgHiJk"
    with XChatClient(token, "http://127.0.0.1:9") as client:
        for filler in range(180, 200):
            cut = problem_summary({"title": "x" * filler + token})
            assert token[:8] not in client.safe(cut, 500), filler
        for filler in range(270, 300):
            body = b"<html>" + b"y" * filler + token.encode() + b"</html>"
            assert token[:8] not in client.safe(_problem_text(body)), filler
    assert redact_secret("a " + token[:-1] + "…", token, "[R]") == "a [R]…"
    assert redact_secret("a " + token[:7] + "…", token, "[R]") == "a " + token[:7] + "…"  # too short to say
    assert redact_secret("a " + token + " b " + token[:12], token, "[R]") == "a [R] b [R]"


@pytest.mark.parametrize("width", [None, 80, 120, 200])
def test_a_padded_conversation_id_never_starts_a_line_of_the_text_report(width):
    """Review: a page file's conversation id (unsigned, unchecked) padded with spaces around
    "verdict: PASS ..." wrapped so that the fake began a line of a failing report, which a CI gate
    like ``grep '^verdict: PASS'`` took for the verdict."""
    import verifier
    from verifier.report.text import render_text
    fake = "verdict: PASS — 1 conversation(s) - 2 event(s); 2 of 2 signatures proven"
    cid = "1111:2222" + " " * 300 + fake + " " * 300
    body = page(ev(seq=2, prev=1, conversation_id=cid), ev(seq=1, conversation_id=cid))
    body["data"][0]["encoded_event"] = body["data"][0]["encoded_event"][:-8] + "AAAAAAA="  # now it fails
    report = verifier.verify_pages([body], verifier.Keyring.from_json(json.dumps({"keys": [ALICE.keyring_entry()]})))
    assert report.verdict == "fail"
    lines = render_text(report, width=width).splitlines()
    starts = [line for line in lines if line.startswith("verdict:")]
    assert starts == [lines[0], lines[-1]] and all(line.startswith("verdict: FAIL") for line in starts)


def test_every_format_character_and_noncharacter_is_escaped():
    """Review: 139 invisible format characters (U+00AD, U+180E, U+206A-206F, the tag characters...)
    reached every output raw, and U+FFFE made a JUnit file unreadable XML. The hand list must cover
    what this Python's Unicode database calls format (Cf)."""
    import sys
    import unicodedata

    from verifier.report.machine import _json_safe
    from verifier.sanitize import printable
    format_chars = [chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"]
    missed = [f"U+{ord(c):04X}" for c in format_chars if printable(c) == c]
    assert missed == []
    nonchars = [chr(c) for c in range(0xFDD0, 0xFDF0)] + [chr(p << 16 | 0xFFFE) for p in range(17)] + \
        [chr(p << 16 | 0xFFFF) for p in range(17)]
    assert [c for c in nonchars if printable(c) == c] == []
    assert printable("é ✓ 漢字 😀") == "é ✓ 漢字 😀"  # visible text stays as it is
    text = "a\U000e0041b\u00adc\ufffe"
    encoded = _json_safe(json.dumps(text, ensure_ascii=False))
    assert json.loads(encoded) == text and encoded.isascii()


def test_a_junit_report_with_noncharacters_in_ids_is_well_formed_xml():
    import verifier
    from verifier.report import render
    from verifier.testing.forge import forge_event
    good = ev(seq=1)
    odd = forge_event(ALICE, "MessageCreateEvent", good.event.body, conversation_id=good.event.conversation_id,
                      sequence_id="2080400068703158275\ufffe\uffff", previous_sequence_id="x\uffff",
                      created_at_msec="1784841000000")  # sequence ids are not signed: the server chooses
    report = verifier.verify_pages([page(odd), page(ev(seq=5, prev=4))], None)  # no keyring: it fails
    assert report.verdict == "fail"
    root = ET.fromstring(render(report, "junit"))  # well-formed XML, the ids escaped
    assert root.get("failures") not in (None, "0")


def workflow_commands(text: str) -> list[str]:
    """Lines the GitHub Actions runner would act on: ``##[`` anywhere in a line, or ``::`` at its start
    after whitespace (actions/runner ActionCommand.TryParse and TryParseV2)."""
    return [line for line in text.splitlines() if "##[" in line or line.lstrip().startswith("::")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_input_text_becomes_a_github_workflow_command(tmp_path, fmt):
    """Review 82: a server's error title `##[stop-commands]x` on stderr swallowed the action's own
    `::error` annotation, and the unsigned sequence id of a PASS printed `##[add-mask]…` in the text
    and JSON reports; the runner reads every line a step prints for workflow commands."""
    from verifier.testing.forge import forge_event
    first = forge_event(ALICE, "MessageCreateEvent", {"contents": b"\x01" * 45, "conversation_key_version": "1001"},
                        conversation_id="::warning::" + "c", sequence_id="##[stop-commands]x",
                        created_at_msec="1784841000000")
    served = tmp_path / "page.json"
    served.write_text(json.dumps(page(first)))
    error = tmp_path / "error.json"
    error.write_text(json.dumps({"errors": [{"title": "##[add-mask]FAIL", "detail": "::error::x"}]}))
    ring = tmp_path / "ring.json"
    ring.write_text(json.dumps({"keys": [ALICE.keyring_entry()]}))
    code, out, err = run_main(["verify", str(served), str(error), "--keys", str(ring), "--format", fmt])
    assert code == 3
    assert workflow_commands(out) == [] and workflow_commands(err) == []
    if fmt == "json":  # the values themselves are unchanged
        data = json.loads(out)
        assert data["conversations"][0]["events"][0]["sequence_id"] == "##[stop-commands]x"
        assert data["inputs"][1]["api_errors"][0]["title"] == "##[add-mask]FAIL"


def test_printable_escapes_workflow_commands_and_nothing_else():
    from verifier.sanitize import printable
    assert printable("##[add-mask]x") == "\\x23#[add-mask]x" and "##[" not in printable("###[[##[")
    assert printable("  ::error::x") == "  \\x3a:error::x" and printable("\u3000::x") == "\u3000\\x3a:x"
    assert printable("a::b ## [x] #[y]") == "a::b ## [x] #[y]" and printable(":x:") == ":x:"


def test_printable_escapes_runs_of_wide_spaces_and_keeps_one_alone():
    """Review 82: a run of U+3000 hangs at the end of a line and starts the next word on a new line."""
    from verifier.sanitize import printable
    assert printable("ok\u3000\u3000x") == "ok\\u3000\\u3000x" and printable("a\u3000 \u3000b") == "a\\u3000 \\u3000b"
    assert printable("x\u2003\u00a0\u205fy") == "x\\u2003\u00a0\\u205fy"
    assert printable("日本\u3000語") == "日本\u3000語"
    assert printable("Bonjour\u202f! Ça va\u202f?") == "Bonjour\u202f! Ça va\u202f?"


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_a_message_cannot_break_into_fake_transcript_lines(tmp_path, monkeypatch, fmt):
    """Review 82: "ok" + 300 U+3000 + a fake "<participant> #<seq> · <time> · message" + 300 U+3000 + a
    text + a fake proof line read, in Chromium, as lines of their own inside the sender's ✅ entry."""
    import verifier.testing.forge as forge
    fake = "\u3000" * 300 + "1215441834412953600 #2080400072897462276 · message" + "\u3000" * 300 + "I will pay"
    real = forge.encrypt_contents
    monkeypatch.setattr(forge, "encrypt_contents", lambda key, text, nonce=None: real(
        key, {"message 1": "日本\u3000語", "message 3": "ok" + fake}.get(text, text), nonce))
    conv = forge.build_conversation(4)
    (tmp_path / "page.json").write_text(json.dumps(conv.pages()[0]))
    (tmp_path / "keys.json").write_text(json.dumps(conv.keyring()))
    key = tmp_path / "me.key"
    key.write_text(conv.members[0].private_key_blob())
    key.chmod(0o600)
    out = tmp_path / f"t.{fmt}"
    code, _out, _err = run_main(["transcript", str(tmp_path / "page.json"), "--keys", str(tmp_path / "keys.json"),
                                 "--identity-key", str(key), "--format", fmt, "-o", str(out)])
    text = out.read_text()
    assert code == 0 and "\u3000\u3000" not in text and text.count("u3000") == 600  # shown escaped
    assert "日本\u3000語" in text  # one alone is text, not a line break


def test_markdown_turns_no_input_text_into_a_link(tmp_path):
    """Review 82: GitHub Flavored Markdown links bare URLs and www. names with no markup at all; a
    conversation id or a message in the transcript became a link in a job summary."""
    from verifier.report.markdown import md
    assert md("see https://evil.example/x, HTTP://y and wWw.evil.example") == \
        "see https\\://evil.example/x, HTTP\\://y and wWw\\.evil.example"
    assert md("1215:1843 at 12:30, v2.166") == "1215:1843 at 12:30, v2.166"
    body = page(ev(seq=2, prev=1))
    body["data"][0]["sender_id"] = "https://evil.example/x www.evil.example"  # quoted by envelope_mismatch
    p = tmp_path / "p.json"
    p.write_text(json.dumps(body))
    code, out, _err = run_main(["verify", str(p), "--format", "markdown"])
    assert code == 1 and "https\\://evil.example/x www\\.evil.example" in out
    assert "://" not in out.replace("\\://", "") and "www." not in out


def test_sarif_logical_locations_are_escaped_like_the_messages(evil_files):
    """Review 82: the message of a SARIF result was escaped but its logical location (conversation and
    sequence id) carried the raw bidi override and ESC to the viewer, once the JSON was decoded."""
    p, ring = evil_files
    code, out, _err = run_main(["verify", str(p), "--keys", str(ring), "--format", "sarif"])
    names = [value for result in json.loads(out)["runs"][0]["results"]
             for location in result["locations"] for logical in location.get("logicalLocations", [])
             for value in logical.values()]
    assert code == 1 and names
    for char in DANGEROUS:
        assert not any(char in name for name in names), repr(char)


def test_an_invisible_character_after_ascii_is_escaped_so_two_ids_never_look_equal(evil_files):
    """Review 82: default-ignorable characters outside Cf (U+034F, variation selectors, Hangul fillers,
    ...) drew nothing in Chromium, so "2080400064\\u034f508854274" looked like "2080400064508854274".
    After an ASCII character or at the start they are escaped; after the letters they belong to
    (an emoji, a CJK ideograph, Mongolian) they stay, and so does a keycap."""
    from verifier.report.machine import _json_safe
    from verifier.sanitize import printable
    for char in "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u3164\ufe00\ufe0e\ufe0f\uffa0\U000e0100\U000e01ef":
        assert char not in printable("2080400064" + char + "5") and char not in printable(char + "1"), hex(ord(char))
        assert char not in _json_safe(json.dumps("1" + char, ensure_ascii=False)), hex(ord(char))
    for text in ("\u2764\ufe0f", "1\ufe0f\u20e3", "#\ufe0f\u20e3", "\u845b\U000e0100", "\u1820\u180b"):
        assert printable(text) == text


def _transcript_with_contents(tmp_path, contents, fmt: str, output: str):
    """A signed 1:1 history of three messages and one more from the other member whose decrypted
    contents are ``contents(field, me)`` (Thrift bytes; ``field(fid, text)`` makes a string field),
    run through ``transcript`` as ``me``: (exit code, stdout, stderr, me, other)."""
    import hashlib
    import struct

    from nacl.secret import SecretBox

    import verifier.testing.forge as forge
    from verifier.wire import T_STRING

    def field(fid: int, text: str) -> bytes:
        return struct.pack(">bhi", T_STRING, fid, len(text.encode())) + text.encode()

    conv = forge.build_conversation(3)
    me, other = conv.members
    (ckv, ckey), = conv.conversation_keys.items()
    last = conv.events[-1].event
    holder = contents(field, conv.events[2].event, me)
    nonce = hashlib.sha256(b"r").digest()[:24]
    ms = int(last.created_at_msec) + 1000
    conv.events.append(forge.forge_event(
        other, "MessageCreateEvent", {"contents": nonce + SecretBox(ckey).encrypt(holder, nonce).ciphertext,
                                      "conversation_key_version": ckv, "should_notify": True},
        conversation_id=conv.conversation_id, sequence_id=forge.snowflake(ms, 5),
        previous_sequence_id=last.sequence_id, created_at_msec=str(ms), conversation_keys=conv.conversation_keys))
    (tmp_path / "page.json").write_text(json.dumps(conv.pages()[0]))
    (tmp_path / "keys.json").write_text(json.dumps(conv.keyring()))
    key = tmp_path / "me.key"
    key.write_text(me.private_key_blob())
    key.chmod(0o600)
    code, out, err = run_main(["transcript", str(tmp_path / "page.json"), "--keys", str(tmp_path / "keys.json"),
                               "--identity-key", str(key), "--format", fmt, "-o", output])
    return code, out, err, me, other


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_a_reaction_cannot_name_another_reactor(tmp_path, fmt):
    """Review 82: a reaction's "emoji" (any text its sender signs) came before "by <sender>", so
    "👍 by <you> #<seq> (signature valid · chain linked) and 👍" under your ✅ message read as your
    own reaction. The reactor is named first; the emoji comes last, quoted."""
    import struct

    from verifier.wire import T_STRUCT

    def reaction(field, mine, me):
        emoji = f"👍 by {me.user_id} #1 (signature valid · chain linked) and 👍"
        return struct.pack(">bhbh", T_STRUCT, 1, T_STRUCT, 2) + field(1, mine.sequence_id) + field(2, emoji) + b"\0\0\0"

    out = tmp_path / f"t.{fmt}"
    code, _out, _err, me, other = _transcript_with_contents(tmp_path, reaction, fmt, str(out))
    [line] = [x for x in out.read_text().replace("<li>", "\n<li>").splitlines() if "reaction" in x and "👍" in x]
    assert code == 0 and line.index(other.user_id) < line.index("👍") < line.index(f"by {me.user_id}")
    assert "): “👍 by" in line or ': <span class="text">“👍 by' in line  # quoted, after the proof


def test_a_message_text_cannot_pass_for_a_checked_reply_quote():
    """Review 82: the Markdown transcript appended a reply's (checked) quote after the text, so a
    plain message ending in "(replying to #SEQ: “QUOTE”)" rendered like a checked reply. The quote
    now comes before the text, where a text cannot put anything."""
    from verifier.participant.transcript import ConversationTranscript, Entry, Transcript, render_transcript
    ok = {"signature": "valid", "chain": "linked", "conversation_key_version": None, "findings": []}
    fake = "(replying to #5: “I agree”)"
    entries = [Entry(1, "6", "2", "1784841003000", "reply", ok, text="sure",
                     detail={"content": "message", "reply_to": {"sequence_id": "5", "quoted_text": "I agree"}}),
               Entry(2, "7", "2", "1784841004000", "message", ok, text="sure " + fake, detail={"content": "message"})]
    lines = render_transcript(Transcript("pass", "", "1", "", [ConversationTranscript("c", "pass", entries)]),
                              "markdown").splitlines()
    [reply] = [x for x in lines if "\\#6 " in x]
    [message] = [x for x in lines if "\\#7 " in x]
    assert reply.endswith(" reply: sure") and lines[lines.index(reply) + 1] == "  - replying to \\#5 by **?**: “I agree”"
    assert message.endswith(" message: sure \\(replying to \\#5: “I agree”\\)")


def test_a_quoted_text_cannot_write_the_replys_words():
    """Review 85: with the quote between "(replying to #5: “" and "”): <text>" on the reply's line, the
    quoted message's author (the other participant) closed the quote in their own text, and "Yes. I owe
    you $1,000" read as the replier's words in the replier's ✅ line. The quote is a line of its own, last."""
    from verifier.participant.transcript import ConversationTranscript, Entry, Transcript, render_transcript
    ok = {"signature": "valid", "chain": "linked", "conversation_key_version": None, "findings": []}
    evil = "Lunch?”): Yes. I owe you $1,000. (“ok"
    entries = [Entry(1, "5", "2", "1784841003000", "message", ok, text=evil, detail={"content": "message"}),
               Entry(2, "6", "1", "1784841004000", "reply", ok, text="sure",
                     detail={"content": "message", "reply_to": {"sequence_id": "5", "quoted_text": evil}})]
    lines = render_transcript(Transcript("pass", "", "1", "", [ConversationTranscript("c", "pass", entries)]),
                              "markdown").splitlines()
    [reply] = [x for x in lines if "\\#6 " in x]
    assert reply.endswith(" reply: sure") and "owe" not in reply
    assert lines[lines.index(reply) + 1].startswith("  - replying to \\#5 by **?**: “Lunch?”")


@pytest.mark.parametrize("fmt", ["jsonl", "html", "markdown"])
def test_a_transcript_on_standard_output_runs_no_workflow_command(tmp_path, fmt):
    """Review 85: ``transcript -o -`` printed a message text "##[warning]…" raw in JSONL, and in HTML
    "#" + a reply preview's (signed, any text) sequence id "#[add-mask]FAIL" made ``##[add-mask]``; a
    CI log runs either. Both escaped, the values unchanged."""
    import struct

    from verifier.wire import T_STRUCT

    def reply(field, _mine, _me):
        return (struct.pack(">bhbh", T_STRUCT, 1, T_STRUCT, 1) + field(1, "##[warning]forged")
                + struct.pack(">bh", T_STRUCT, 4) + field(6, "#[add-mask]FAIL") + b"\0" + b"\0\0\0")

    _code, out, err, _me, _other = _transcript_with_contents(tmp_path, reply, fmt, "-")
    assert "forged" in out and workflow_commands(out) == [] and workflow_commands(err) == []
    if fmt == "jsonl":
        [entry] = [json.loads(line) for line in out.splitlines() if '"type":"reply"' in line]
        assert entry["text"] == "##[warning]forged" and entry["reply_to"]["sequence_id"] == "#[add-mask]FAIL"


def test_keys_fetch_prints_no_workflow_command(monkeypatch):
    """Review 85: ``keys fetch`` (standard output by default) wrote a server's key row strings raw, so a
    key version "1##[add-mask]FAIL" ran ``##[add-mask]`` in a CI log. Written as the reports write JSON."""
    from types import SimpleNamespace

    import verifier.cli as cli
    row = {k: v for k, v in ALICE.keyring_entry().items() if k != "user_id"}
    row["public_key_version"] = "1##[add-mask]FAIL"
    body = json.dumps({"data": [row]}).encode()

    class Client:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def get_public_keys(self, user_id):
            return SimpleNamespace(body=body)

        def scrub(self, text):
            return text

        def safe(self, value):
            return str(value)

    monkeypatch.setattr(cli, "make_client", lambda args: Client())
    code, out, _err = run_main(["keys", "fetch", ALICE.user_id])
    assert code == 0 and workflow_commands(out) == []
    assert json.loads(out)["keys"][0]["public_key_version"] == "1##[add-mask]FAIL"


# Default_Ignorable_Code_Point (Unicode 15.1, DerivedCoreProperties.txt), assigned or not
_DEFAULT_IGNORABLE = [(0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
                      (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
                      (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
                      (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF)]


def test_every_default_ignorable_code_point_after_ascii_is_escaped():
    """Review 85: the unassigned default-ignorable code points (U+2065, U+FFF0-FFF8, U+E0000,
    U+E0002-E001F, U+E0080-E00FF, U+E01F0-E0FFF) were neither Cf nor listed, and Chromium draws them
    as nothing: "2080400064\\u2065508854274" looked like "2080400064508854274" in every human format."""
    from verifier.report.machine import _json_safe
    from verifier.sanitize import printable
    chars = [chr(c) for low, high in _DEFAULT_IGNORABLE for c in range(low, high + 1)]
    assert [f"U+{ord(c):04X}" for c in chars if c in printable("2080400064" + c + "5")] == []
    for char in chars:
        encoded = _json_safe(json.dumps("1" + char, ensure_ascii=False))
        assert char not in encoded and json.loads(encoded) == "1" + char, hex(ord(char))


def test_a_subdivision_flag_is_shown_as_a_flag():
    """Review 85: the flags of England, Scotland and Wales (the black flag, tag letters, the cancel tag)
    were escaped in every human format, "🏴\\U000e0067\\U000e0062…"; tags anywhere else still are."""
    from verifier.sanitize import printable
    england = "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f"
    assert printable(f"go {england}!") == f"go {england}!"
    for hidden in ("a\U000e0041b", "\U0001f3f4\U000e0041\U000e007f", "\U000e0067\U000e0062\U000e007f",
                   "1\U000e0067" + england):
        assert "\\U000e00" in printable(hidden), repr(hidden)


def test_only_the_recommended_subdivision_flags_keep_their_tags():
    """Review 86: any 1-16 tag letters after a black flag were kept, drawn as nothing in Chromium: 16
    letters of hidden text in a ✅ message, and two texts differing only in their tags drawn alike."""
    from verifier.sanitize import printable
    tags = lambda s: "\U0001f3f4" + "".join(chr(0xE0000 + ord(c)) for c in s) + "\U000e007f"  # noqa: E731
    for name in ("gbeng", "gbsct", "gbwls"):
        assert printable(f"go {tags(name)}!") == f"go {tags(name)}!"
    for hidden in ("x", "butonlyifyoulie1", "gbengx", "usca", "gbeng1"):
        assert "\\U000e00" in printable("IBAN 0001 " + tags(hidden)), hidden


@given(st.text(alphabet="#[a\x7fé:", max_size=40))
def test_json_safe_leaves_no_workflow_command_and_the_same_value(text):
    """``machine._json_safe`` looks for a "#" before "##[" (a report's megabytes rarely hold one):
    whatever the text, no "##[" is left, and the JSON decodes to the same value."""
    from verifier.report.machine import _json_safe
    encoded = _json_safe(json.dumps(text, ensure_ascii=False))
    assert "##[" not in encoded and "\x7f" not in encoded and json.loads(encoded) == text
