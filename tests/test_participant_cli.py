"""--identity-key on verify and audit, and the transcript command: the key is read from a file only and
never shows up anywhere; plaintext is written only by `transcript`, only to the output it names."""

from __future__ import annotations

import base64
import copy
import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO, saved_as_audit
from sdk_conversation import History, keyring_json, make_user

from verifier.cli import main
from verifier.errors import IdentityKeyError
from verifier.keys import P256_ORDER
from verifier.participant import ENV_VAR, IdentityKey, load_identity_key
from verifier.participant.transcript import FORMATS as TRANSCRIPT_FORMATS
from verifier.report import FORMATS
from verifier.testing.forge import Identity, build_conversation
from verifier.testing.server import FakeXApi

HOSTILE = "<script>alert(1)</script> \x1b[2J\u202eevil & \"quoted\" ]]> `code` *bold* | pipe"
SECRET_TEXT = "the secret plan is at noon"


def blob_of(identity: Identity) -> bytes:
    return (identity.identity.private_numbers().private_value.to_bytes(32, "big")
            + identity.signing.private_numbers().private_value.to_bytes(32, "big"))


def secrets_of(blob: bytes) -> list[str]:
    """Every form the key could leak in: its base64 (with and without padding), hex, the scalars."""
    text = base64.b64encode(blob).decode()
    out = [text, text.rstrip("="), blob.hex(), blob.hex().upper(), base64.urlsafe_b64encode(blob).decode()]
    for i in range(0, len(blob), 32):
        part = blob[i:i + 32]
        out += [str(int.from_bytes(part, "big")), part.hex(), base64.b64encode(part).decode().rstrip("=")]
    return out


def write_key(path: Path, blob: bytes, mode: int = 0o600) -> Path:
    path.write_text(base64.b64encode(blob).decode() + "\n")
    os.chmod(path, mode)
    return path


@pytest.fixture(scope="module")
def convo(tmp_path_factory):
    """An SDK-made 1:1 with hostile and secret plaintext, saved as a page, a keyring and B's key file."""
    root = tmp_path_factory.mktemp("participant")
    a, b = make_user("1111", "1700000000001"), make_user("2222", "1700000000002")
    h = History("1111:2222")
    h.key_change(a, [a, b])
    first = h.text(a, SECRET_TEXT)
    h.reply(b, HOSTILE, first)
    h.react(b, first, "🔥")
    h.edit(a, first, SECRET_TEXT + " (edited)")
    second = h.text(b, "to be deleted")
    h.delete(b, [second.sequence_id])
    h.key_change(b, [a, b])
    h.text(a, "after the rotation")
    (root / "page.json").write_text(json.dumps(h.page()))
    (root / "keyring.json").write_text(keyring_json(a, b))
    write_key(root / "b.key", b.blob)
    keys = [base64.b64encode(k).decode() for k in h.keys.values()] + [k.hex() for k in h.keys.values()]
    return {"root": root, "a": a, "b": b, "history": h, "blob": b.blob, "conversation_keys": keys,
            "plaintexts": [SECRET_TEXT, "to be deleted", "after the rotation", "alert(1)", "🔥"]}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture()
def run(capsys, monkeypatch):
    """The command line in this process (fast); ``env_extra`` set for the call."""
    def call(*args, env_extra=None):
        monkeypatch.delenv(ENV_VAR, raising=False)
        monkeypatch.delenv("X_BEARER_TOKEN", raising=False)
        for name, value in (env_extra or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err and "internal error" not in err
        return Result(code, out, err)
    return call


def run_process(*args):
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    proc = subprocess.run([sys.executable, "-m", "verifier", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def assert_absent(texts: list[str], *haystacks: str) -> None:
    for text in texts:
        for hay in haystacks:
            assert text not in hay, f"{text[:20]!r} leaked"


def all_text(directory: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(directory.rglob("*")) if p.is_file())


# ----------------------------------------------------------------------------------------- the key file
@pytest.mark.parametrize("content, message", [
    pytest.param(b"", "32 or 64 bytes", id="empty"),
    pytest.param(b"!!!not base64!!!", "not standard base64", id="not-base64"),
    pytest.param(base64.urlsafe_b64encode(b"\xfb" * 64), "not standard base64", id="url-safe"),
    pytest.param(base64.b64encode(b"\x01" * 48), "not 48", id="48-bytes"),
    pytest.param(base64.b64encode(bytes(32)), "out of range", id="scalar-zero"),
    pytest.param(base64.b64encode(P256_ORDER.to_bytes(32, "big")), "out of range", id="scalar-order"),
    pytest.param(b"\xff\xfe" + b"\x01" * 62, "not base64 text", id="binary"),
    pytest.param(b"A" * 5000, "larger than", id="too-large"),
])
def test_a_bad_key_file_is_a_usage_error_that_quotes_nothing_of_it(tmp_path, content, message):
    path = tmp_path / "k"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(IdentityKeyError) as caught:
        load_identity_key(str(path), environ={})
    assert message in str(caught.value) and str(path) in str(caught.value)
    if len(content) > 8:
        assert content.decode("latin-1")[:12] not in str(caught.value)


def test_missing_file_directory_and_environment(tmp_path):
    with pytest.raises(IdentityKeyError, match="cannot read"):
        load_identity_key(str(tmp_path / "nope"), environ={})
    with pytest.raises(IdentityKeyError, match="not a regular file"):
        load_identity_key(str(tmp_path), environ={})
    assert load_identity_key(None, environ={}) is None
    blob = blob_of(Identity.from_seed("1", "1", "k"))
    path = write_key(tmp_path / "k", blob)
    assert load_identity_key(None, environ={ENV_VAR: str(path)}).path == str(path)
    other = write_key(tmp_path / "other", blob_of(Identity.from_seed("2", "1", "k")))
    assert load_identity_key(str(other), environ={ENV_VAR: str(path)}).path == str(other)  # the option wins


@pytest.mark.parametrize("command, option", [("verify", "--keys"), ("verify", "--identity-key"),
                                             ("audit", "--identity-key"), ("audit", "--receipt-key")])
def test_a_missing_key_file_exits_3_whichever_option_names_it(tmp_path, monkeypatch, capsys, command, option):
    """docs/cli.md: exit 3 is an unreadable file. A missing --identity-key file gave 2 (a usage error)
    where a missing --keys or --receipt-key file gave 3: one kind of problem, one code."""
    monkeypatch.setenv("X_BEARER_TOKEN", "token")
    monkeypatch.delenv(ENV_VAR, raising=False)
    page = tmp_path / "page.json"
    page.write_text("{}")
    target = [str(page)] if command == "verify" else ["1:2", "--base-url", "http://127.0.0.1:9"]
    assert main([command, *target, option, str(tmp_path / "missing.key")]) == 3
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("size", [32, 64])
def test_a_key_pasted_where_its_file_name_goes_is_never_echoed(run, tmp_path, convo, size):
    """A likely mistake: the blob itself as --identity-key or in the variable. The error names the
    option or the variable, says the value looks like a key, and quotes none of it."""
    pasted = base64.b64encode(convo["blob"][:size]).decode()
    for args, env in ((["--identity-key", pasted], None), ([], {ENV_VAR: pasted})):
        result = run("verify", tmp_path / "none.json", *args, env_extra=env)
        assert result.returncode == 3 and "looks like a key blob itself" in result.stderr
        assert ("--identity-key" if args else ENV_VAR) in result.stderr
        assert_absent([pasted[:12], pasted[-16:], *secrets_of(convo["blob"])], result.stdout, result.stderr)
    with pytest.raises(IdentityKeyError) as caught:
        load_identity_key("x" * 300 + "\0", environ={})  # not even a path: still one error, nothing echoed
    assert "xxxxxxxx" not in str(caught.value)


@pytest.mark.parametrize("mode, warned", [(0o600, False), (0o400, False), (0o640, True), (0o644, True), (0o606, True)])
def test_permissions_wider_than_0600_are_warned(tmp_path, mode, warned):
    path = write_key(tmp_path / "k", blob_of(Identity.from_seed("1", "1", "k")), mode)
    loaded = load_identity_key(str(path), environ={})
    assert bool(loaded.warnings) == warned
    if warned:
        assert "chmod 600" in loaded.warnings[0]


@pytest.mark.parametrize("encode", [lambda b: base64.b64encode(b), lambda b: base64.b64encode(b).rstrip(b"="),
                                    lambda b: b"  " + base64.b64encode(b) + b"\r\n"],
                         ids=["padded", "unpadded", "whitespace"])
@pytest.mark.parametrize("size", [32, 64])
def test_the_sdk_blob_loads_with_or_without_the_signing_scalar(tmp_path, encode, size):
    blob = blob_of(Identity.from_seed("1", "1", "k"))[:size]
    (tmp_path / "k").write_bytes(encode(blob))
    key = IdentityKey.from_file(tmp_path / "k")
    assert (key.signing_public_key is None) == (size == 32)


def test_a_key_given_as_text_loads_as_its_bytes_do():
    """Round 88: ``IdentityKey.from_text`` of a str (a key read from an environment variable or a
    secret store) raised TypeError; text that is not ASCII is an IdentityKeyError naming no key."""
    from verifier.errors import IdentityKeyError

    blob = blob_of(Identity.from_seed("1", "1", "k"))
    text = base64.b64encode(blob).decode()
    assert IdentityKey.from_text(text + "\n").fingerprint() == IdentityKey.from_text(text.encode()).fingerprint()
    with pytest.raises(IdentityKeyError, match="not base64 text") as raised:
        IdentityKey.from_text("é" + text)
    assert text not in str(raised.value)


def test_the_key_object_never_shows_the_key(convo):
    key = IdentityKey.from_blob(convo["blob"])
    assert_absent(secrets_of(convo["blob"]), repr(key), str(key), f"{key}")
    assert key.fingerprint() in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)
    with pytest.raises(TypeError):
        copy.copy(key)


# ----------------------------------------------------------------------------------------- verify and audit
@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_as_participant_reports_without_key_or_plaintext(run, convo, tmp_path, fmt):
    root = convo["root"]
    out = tmp_path / f"report.{fmt}"
    proc = run("verify", root / "page.json", "--keys", root / "keyring.json", "--identity-key", root / "b.key",
               "--format", fmt, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert_absent(secrets_of(convo["blob"]) + convo["conversation_keys"] + convo["plaintexts"],
                  proc.stdout, proc.stderr, out.read_text())


def test_the_participant_proves_what_an_outsider_cannot(run, convo):
    root = convo["root"]
    proc = run("verify", root / "page.json", "--keys", root / "keyring.json", "--format", "json")
    outsider = json.loads(proc.stdout)
    assert outsider["proof"]["needs_conversation_key"] == 4  # two key changes, each repeated in meta
    proc = run("verify", root / "page.json", "--keys", root / "keyring.json", "--format", "json",
               "--identity-key", root / "b.key")
    assert proc.returncode == 0
    participant = json.loads(proc.stdout)
    assert participant["proof"]["needs_conversation_key"] == 0
    assert participant["proof"]["proven"] == participant["proof"]["signed"]


def test_the_environment_variable_names_the_key_file(run, convo):
    root = convo["root"]
    proc = run("verify", root / "page.json", "--keys", root / "keyring.json", "--format", "json",
               env_extra={ENV_VAR: str(root / "b.key")})
    assert proc.returncode == 0 and json.loads(proc.stdout)["proof"]["needs_conversation_key"] == 0


def test_a_bad_key_file_exits_3_with_one_line_naming_it(convo, tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text(base64.b64encode(convo["blob"][:48]).decode())
    proc = run_process("verify", convo["root"] / "page.json", "--identity-key", bad)
    assert proc.returncode == 3 and proc.stderr.count("\n") == 1 and str(bad) in proc.stderr
    assert_absent(secrets_of(convo["blob"][:48]), proc.stderr)


def test_a_world_readable_key_is_warned_on_stderr_and_still_used(run, convo, tmp_path):
    loose = write_key(tmp_path / "loose.key", convo["blob"], 0o644)
    proc = run("verify", convo["root"] / "page.json", "--keys", convo["root"] / "keyring.json",
               "--identity-key", loose, "--format", "json")
    assert proc.returncode == 0 and "mode 0644" in proc.stderr and "chmod 600" in proc.stderr
    assert_absent(secrets_of(convo["blob"]), proc.stderr)


@pytest.fixture(scope="module")
def served():
    """A forge-made conversation on the local X API server; Bob is the participant."""
    alice = Identity.from_seed("1215441834412953600", "1765382634817", "pa")
    bob = Identity.from_seed("1843439638876491776", "1736723828667", "pb")
    conv = build_conversation(12, members=[alice, bob], seed="participant")
    with FakeXApi([conv]) as api:
        yield api, conv, bob


def test_audit_as_participant_saves_no_key_and_no_plaintext(run, served, tmp_path):
    api, conv, bob = served
    key = write_key(tmp_path / "bob.key", blob_of(bob))
    evidence, report = tmp_path / "evidence", tmp_path / "report.json"
    proc = run("audit", conv.conversation_id, "--base-url", api.url, "--identity-key", key, "--save", evidence,
               "--format", "json", "-o", report, "--backoff-base", "0.01", env_extra={"X_BEARER_TOKEN": api.state.token})
    assert proc.returncode == 0, proc.stderr
    body = json.loads(report.read_text())
    assert body["proof"]["needs_conversation_key"] == 0 and body["proof"]["proven"] == body["proof"]["signed"]
    plaintexts = [f"message {i}" for i in range(1, 12)]
    assert_absent(secrets_of(blob_of(bob)) + plaintexts, proc.stdout, proc.stderr, report.read_text(),
                  all_text(evidence))
    again = run("verify", evidence, "--identity-key", key, "--trust-evidence-keys", "--format", "json")
    assert saved_as_audit(json.loads(again.stdout))["proof"] == body["proof"]


# ----------------------------------------------------------------------------------------- transcript
def transcript(run, convo, tmp_path, fmt, *extra):
    root = convo["root"]
    out = tmp_path / f"transcript.{fmt}"
    proc = run("transcript", root / "page.json", "--keys", root / "keyring.json", "--identity-key", root / "b.key",
               "--format", fmt, "-o", out, *extra)
    assert_absent(secrets_of(convo["blob"]) + convo["conversation_keys"], proc.stdout, proc.stderr, out.read_text())
    assert_absent(convo["plaintexts"], proc.stdout, proc.stderr)  # plaintext only in the named output
    assert out.stat().st_mode & 0o777 == 0o600  # and readable by its owner only, whatever the umask allows
    return proc, out.read_text()


def test_transcript_jsonl_has_each_message_with_its_proof(run, convo, tmp_path):
    proc, text = transcript(run, convo, tmp_path, "jsonl")
    assert proc.returncode == 0 and "verdict: pass" in proc.stderr
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["record"] == "transcript" and lines[0]["participant"] == "2222"
    assert lines[1] == {"record": "conversation", "conversation_id": "1111:2222", "verdict": "pass",
                        "entries": len(lines) - 2}
    entries = lines[2:]
    types = [e["type"] for e in entries]
    assert types == ["key_change", "message", "reply", "message", "delete", "key_change", "message"]
    first = entries[1]
    assert first["text"] == SECRET_TEXT
    assert [e["text"] for e in first["edits"]] == [SECRET_TEXT + " (edited)"]
    assert [(r["type"], r["emoji"]) for r in first["reactions"]] == [("reaction", "🔥")]
    assert first["proof"]["signature"] == "valid" and first["proof"]["chain"] == "linked"
    assert first["proof"]["conversation_key_version"] and first["proof"]["findings"] == []
    reply = entries[2]
    assert reply["text"] == HOSTILE and reply["reply_to"]["quoted_text"] == SECRET_TEXT
    deleted = entries[3]
    assert deleted["text"] == "to be deleted" and deleted["deleted"][0]["for_all"] is True
    assert entries[0]["your_key"] == "opened"


def test_transcript_html_is_self_contained_escaped_and_scriptless(run, convo, tmp_path):
    proc, page = transcript(run, convo, tmp_path, "html")
    assert proc.returncode == 0
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'' in page
    assert "<script" not in page.replace("&lt;script", "") and "http://" not in page and "https://" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "\\x1b[2J" in page and "\\u202e" in page
    assert "\x1b" not in page and "\u202e" not in page
    assert "&amp; &quot;quoted&quot;" in page and SECRET_TEXT in page


def test_transcript_markdown_escapes_markup(run, convo, tmp_path):
    proc, text = transcript(run, convo, tmp_path, "markdown")
    assert proc.returncode == 0
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in text and "\\`code\\`" in text and "\\*bold\\*" in text
    assert "\x1b" not in text and "\u202e" not in text and "\\x1b" in text
    # every attachment shows its proof, a delete too (round 74: only html showed the delete's)
    [deleted] = [line for line in text.splitlines() if "deleted for everyone by" in line]
    assert "(signature valid" in deleted


def test_transcript_to_standard_output_only_when_asked(run, convo):
    root = convo["root"]
    base = ["transcript", root / "page.json", "--keys", root / "keyring.json", "--identity-key", root / "b.key"]
    proc = run(*base)
    assert proc.returncode == 2 and "--output" in proc.stderr and proc.stdout == ""
    proc = run(*base, "-o", "-")
    assert proc.returncode == 0 and SECRET_TEXT in proc.stdout


@pytest.mark.parametrize("args, message", [
    pytest.param(["1111:2222", "-o", "x"], "--identity-key", id="no-key"),
    pytest.param(["{page}", "not/an:id", "-o", "x", "--identity-key", "{key}"], "either files", id="mixed"),
    pytest.param(["../etc", "-o", "x", "--identity-key", "{key}"], "", id="bad-id"),
    pytest.param(["{page}", "-o", "x", "--identity-key", "{key}", "--save", "d"], "--save", id="save-with-files"),
    pytest.param(["{page}", "-o", "x", "--identity-key", "{key}", "--force"], "--force", id="force-with-files"),
    pytest.param(["1111:2222", "-o", "x", "--identity-key", "{key}", "--force"], "--force needs --save",
                 id="force-without-save"),
])
def test_transcript_usage_errors(run, convo, args, message):
    root = convo["root"]
    args = [str(a).format(page=root / "page.json", key=root / "b.key") for a in args]
    proc = run("transcript", *args)
    assert proc.returncode == 2 and message in proc.stderr


def test_transcript_fails_with_the_findings_of_a_forged_reply(run, tmp_path):
    a, b = make_user("1111", "1700000000001"), make_user("2222", "1700000000002")
    h = History("1111:2222")
    h.key_change(a, [a, b])
    first = h.text(a, "what was said")
    h.reply(b, "quoting", first, reply_to_text="what was never said")
    (tmp_path / "page.json").write_text(json.dumps(h.page()))
    (tmp_path / "ring.json").write_text(keyring_json(a, b))
    key = write_key(tmp_path / "a.key", a.blob)
    out = tmp_path / "t.jsonl"
    proc = run("transcript", tmp_path / "page.json", "--keys", tmp_path / "ring.json", "--identity-key", key, "-o", out)
    assert proc.returncode == 1 and "verdict: fail" in proc.stderr
    reply = [json.loads(line) for line in out.read_text().splitlines()][-1]
    assert reply["type"] == "reply" and reply["proof"]["findings"][0]["code"] == "reply_preview_mismatch"


def test_an_attachment_that_is_not_proven_is_never_shown_under_a_proven_message(run, tmp_path):
    """Round 73: member C's edit and reaction of B's message, served as B's (their signatures fail),
    were attached under B's ✅ message ("edited by 2222: I confess everything"), with no ❌ line
    anywhere and nothing in the findings heading; a forged delete struck the message through. Only
    proven (✅) edits, reactions and deletes are attached; the others stand on their own ❌ line."""
    a, b, c = (make_user(uid, "1700000000001") for uid in ("1111", "2222", "3333"))
    h = History("g4444444444")
    h.key_change(a, [a, b, c])
    original = h.text(b, "lunch at noon")
    h.send("edit", b, c.chat.encrypt_edit(original.b64, "I confess everything", **h.key_args()))
    h.send("react", b, c.chat.encrypt_add_reaction(original.b64, "💩", **h.key_args()))
    honest = h.react(a, original, "👍")
    (tmp_path / "page.json").write_text(json.dumps(h.page()))
    (tmp_path / "ring.json").write_text(keyring_json(a, b, c))
    key = write_key(tmp_path / "a.key", a.blob)
    out = tmp_path / "t.jsonl"
    args = ["transcript", tmp_path / "page.json", "--keys", tmp_path / "ring.json", "--identity-key", key]
    assert run(*args, "-o", out).returncode == 1
    lines = [json.loads(line) for line in out.read_text().splitlines()][2:]
    [message] = [x for x in lines if x.get("text") == "lunch at noon"]
    assert "edits" not in message and [r["sequence_id"] for r in message["reactions"]] == [honest.sequence_id]
    forged = [x for x in lines if x["type"] in ("edit", "reaction")]
    assert [(x["type"], x["proof"]["signature"]) for x in forged] == [("edit", "invalid"), ("reaction", "invalid")]
    markdown = tmp_path / "t.md"
    assert run(*args, "--format", "markdown", "-o", markdown).returncode == 1
    [confession] = [line for line in markdown.read_text().splitlines() if "I confess everything" in line]
    assert confession.startswith("- ❌ ")
    html = tmp_path / "t.html"
    assert run(*args, "--format", "html", "-o", html).returncode == 1
    page = html.read_text()
    assert page.count('<li class="sys bad">') == 2 and "I confess everything" in page
    # review 82: the HTML shows the marks the Markdown shows, not a border colour alone
    assert page.count('<span class="mark" title="error: not proven">❌</span>') == 2
    assert page.count('<span class="mark" title="proven">✅</span>') == proven_entries(markdown.read_text())


def test_a_reaction_on_its_own_line_says_not_in_this_history_only_when_it_is_not(run, tmp_path):
    """Round 90: a reaction stands on its own line when its target is not an earlier message of the
    history, and also when its own proof fails (round 73); every such line read "reacted to X (not
    in this history)", so another member's forged reaction to a message the history holds told the
    participant that message was not there."""
    a, b, c = (make_user(uid, "1700000000001") for uid in ("1111", "2222", "3333"))
    h = History("g4444444444")
    h.key_change(a, [a, b, c])
    original = h.text(b, "lunch at noon")
    forged = h.send("react", b, c.chat.encrypt_add_reaction(original.b64, "💩", **h.key_args()))  # c's, as b's
    ghost = str(int(original.sequence_id) - 1000)  # inside no event of the history
    lost = h.react(a, None, "👍", target_message_sequence_id=ghost)
    (tmp_path / "page.json").write_text(json.dumps(h.page()))
    (tmp_path / "ring.json").write_text(keyring_json(a, b, c))
    key = write_key(tmp_path / "a.key", a.blob)
    for fmt in ("markdown", "html"):
        out = tmp_path / f"t.{fmt}"
        assert run("transcript", tmp_path / "page.json", "--keys", tmp_path / "ring.json", "--identity-key", key,
                   "--format", fmt, "-o", out).returncode == 1
        text = out.read_text().replace("\\", "")  # Markdown escapes the parentheses
        shown_above = f"reacted to {original.sequence_id} (in this history; not shown under it: not proven):"
        assert shown_above in text and f"reacted to {original.sequence_id} (not" not in text
        assert f"reacted to {ghost} (not in this history)" in text
        assert forged.sequence_id in text and lost.sequence_id in text


def proven_entries(markdown: str) -> int:
    """How many entries the Markdown transcript marks ✅ (the HTML must mark as many)."""
    return sum(1 for line in markdown.splitlines() if line.startswith("- ✅ "))


def test_transcript_of_a_fetched_conversation_and_of_its_evidence(run, served, tmp_path):
    api, conv, bob = served
    key = write_key(tmp_path / "bob.key", blob_of(bob))
    evidence, out = tmp_path / "evidence", tmp_path / "t.jsonl"
    proc = run("transcript", conv.conversation_id, "--base-url", api.url, "--identity-key", key, "--save", evidence,
               "-o", out, "--backoff-base", "0.01", env_extra={"X_BEARER_TOKEN": api.state.token})
    assert proc.returncode == 0, proc.stderr
    entries = [json.loads(line) for line in out.read_text().splitlines()][2:]
    assert [e["text"] for e in entries if e["type"] == "message"] == [f"message {i}" for i in range(1, 12)]
    assert_absent([f"message {i}" for i in range(1, 12)], all_text(evidence), proc.stderr)
    offline = tmp_path / "offline.jsonl"
    alone = run("transcript", evidence, "--identity-key", key, "-o", offline)  # the saved keys alone: why it fails
    header = json.loads(offline.read_text().splitlines()[0])
    assert alone.returncode == 1 and "evidence_keys_unauthenticated: signer keys from the evidence" in alone.stderr
    assert [(p["code"], p["severity"]) for p in header["problems"]] == [("evidence_keys_unauthenticated", "error")]
    assert run("transcript", evidence, "--identity-key", key, "-o", offline, "--trust-evidence-keys").returncode == 0
    header, *rest = offline.read_text().splitlines(keepends=True)
    online_header, *online_rest = out.read_text().splitlines(keepends=True)
    assert rest == online_rest and json.loads(online_header)["problems"] == []
    assert json.loads(header)["proof"] == json.loads(online_header)["proof"].replace(  # whose word the keys are
        "signer keys from the fetched key directory", "signer keys NOT authenticated (saved in the evidence directory)")


def test_transcript_formats_match_the_cli_choices():
    assert TRANSCRIPT_FORMATS == ("jsonl", "markdown", "html")


def test_without_an_identity_key_nothing_of_the_participant_audit_is_loaded(convo):
    code = ("import sys\nfrom verifier.cli import main\n"
            f"main(['verify', {str(convo['root'] / 'page.json')!r}, '-o', '/dev/null'])\n"
            "assert 'verifier.participant' not in sys.modules and 'nacl' not in sys.modules\n")
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("version, unsigned", [("3", ["admin_ids", "member_ids", "title"]),
                                               ("7", ["admin_ids", "member_ids"])])
def test_a_transcript_shows_only_what_a_group_create_signs(run, tmp_path, version, unsigned):
    """Review: a GroupCreate signs its member ids (and from version 4 its title) but never its
    admins; a server's rewrite of a v3 create's title and admins showed in the transcript as part
    of a ``valid`` entry. Unsigned fields are shown apart, as not signed; so is the member list as
    served, whose end the signature does not bind (review 56): the signed ids are ``named_ids``."""
    from helpers import reencode

    from verifier.testing.forge import ecies_encrypt, encrypt_contents, forge_event, item_json, snowflake
    a, b = Identity.from_seed("1111", "1", "ga"), Identity.from_seed("2222", "1", "gb")
    group, ckv, key = "g2010754001234567890", "1784840999000", os.urandom(32)

    def seq(i: int) -> str:
        return snowflake(1_784_841_000_000 + i * 1000, i)

    create = forge_event(a, "GroupChangeEvent.GroupCreate", {"member_ids": ["1111", "2222"], "admin_ids": ["1111"],
                                                             "title": "Family", "conversation_key_version": ckv},
                         conversation_id=group, sequence_id=seq(1), created_at_msec="1784841001000",
                         signature_version=version)
    entries = [{"user_id": m.user_id, "public_key_version": m.version,
                "encrypted_conversation_key": base64.b64encode(ecies_encrypt(m.identity.public_key(), key)).decode()}
               for m in (a, b)]
    change = forge_event(a, "ConversationKeyChangeEvent", {"conversation_key_version": ckv,
                                                           "conversation_participant_keys": entries},
                         conversation_id=group, sequence_id=seq(2), previous_sequence_id=seq(1),
                         created_at_msec="1784841002000", conversation_keys={ckv: key})
    message = forge_event(a, "MessageCreateEvent", {"contents": encrypt_contents(key, "welcome"),
                                                    "conversation_key_version": ckv},
                          conversation_id=group, sequence_id=seq(3), previous_sequence_id=seq(2),
                          created_at_msec="1784841003000")
    rewritten = {**create.event.body, "admin_ids": ["2222"]}
    if version == "3":
        rewritten["title"] = "Pay the admin 2222 here"
    create.event.body = rewritten
    create = reencode(create)
    (tmp_path / "page.json").write_text(json.dumps({"data": [item_json(e) for e in (message, change, create)]}))
    (tmp_path / "ring.json").write_text(json.dumps({"keys": [a.keyring_entry(), b.keyring_entry()]}))
    write_key(tmp_path / "b.key", blob_of(b))
    for fmt in ("jsonl", "markdown"):
        out = tmp_path / f"t.{fmt}"
        proc = run("transcript", tmp_path / "page.json", "--keys", tmp_path / "ring.json", "--identity-key",
                   tmp_path / "b.key", "--format", fmt, "-o", out)
        assert proc.returncode == 0, proc.stderr
        text = out.read_text()
        if fmt == "jsonl":
            (entry,) = [json.loads(line) for line in text.splitlines() if '"group_change"' in line]
            assert entry["proof"]["signature"] == "valid" and entry["named_ids"] == ["1111", "2222"]
            assert sorted(entry["not_signed"]) == unsigned and not set(unsigned) & set(entry)
            assert (entry.get("title") == "Family") is (version == "7")
        else:
            line = next(line for line in text.splitlines() if "GroupCreate" in line)
            assert "ids signed, list boundaries not signed: 1111, 2222" in line and "admins:" not in line
            assert "Pay the admin" not in line
            assert sorted(line.split("not signed, not shown: ")[1].replace("\\_", "_").split(", ")) == unsigned


def test_an_empty_key_variable_is_a_usage_error(run, convo):
    """New-user review: ``XCHAT_VERIFY_IDENTITY_KEY_FILE=`` silently made the run an outsider's."""
    root = convo["root"]
    proc = run("verify", root / "page.json", "--keys", root / "keyring.json", env_extra={ENV_VAR: ""})
    assert proc.returncode == 2 and "is set but empty" in proc.stderr and proc.stderr.count("\n") == 1
    # review 61: transcript said only that a key was needed
    proc = run("transcript", root / "page.json", "--keys", root / "keyring.json", "-o", root / "t.md",
               env_extra={ENV_VAR: ""})
    assert proc.returncode == 2 and "is set but empty" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("fmt, shown", [("markdown", "- error no\\_trusted\\_keys: no keyring"),
                                        ("html", "<li>error no_trusted_keys: no keyring"),
                                        ("jsonl", '"problems":[{"code":"no_trusted_keys","severity":"error"')])
def test_a_failed_transcript_says_why_in_its_heading_and_on_stderr(run, convo, tmp_path, fmt, shown):
    """Review 67: a transcript whose lines were all ✅ said FAIL and nowhere why (the run-level
    finding was in no format and not on stderr)."""
    root = convo["root"]
    out = tmp_path / f"t.{fmt}"
    proc = run("transcript", root / "page.json", "--identity-key", root / "b.key", "--format", fmt, "-o", out)
    assert proc.returncode == 1 and "no_trusted_keys: no keyring" in proc.stderr
    assert shown in out.read_text()


def test_the_local_server_writes_identity_keys_that_open_its_conversations(run, tmp_path):
    """Review 67: a new user had no way to try the participant audit without an X account (the key
    had to be derived from the server's seeds by hand)."""
    import stat

    from verifier.testing.server import default_conversations, write_identity_keys
    conversations = default_conversations(12)
    written = write_identity_keys(conversations, str(tmp_path / "keys"))
    members = {m.user_id: m for c in conversations for m in c.members}
    assert sorted(p.name for p in written) == sorted(f"{uid}.key" for uid in members)
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert base64.b64decode(path.read_text()) == blob_of(members[path.stem])
    direct = conversations[0]
    with FakeXApi(conversations) as api:
        out = tmp_path / "t.jsonl"
        proc = run("transcript", direct.conversation_id, "--base-url", api.url, "--identity-key",
                   tmp_path / "keys" / f"{direct.members[0].user_id}.key", "-o", out, "--backoff-base", "0.01",
                   env_extra={"X_BEARER_TOKEN": api.state.token})
    assert proc.returncode == 0, proc.stderr
    texts = [json.loads(line).get("text") for line in out.read_text().splitlines()]
    assert "message 1" in texts
    # r111: as audit's (r109), not "from the keyring", which a fetched transcript is never given
    assert json.loads(out.read_text().splitlines()[0])["proof"].endswith("signer keys from the fetched key directory")
