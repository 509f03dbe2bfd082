"""Shared builders for tests: identities, signed events, pages and a one-call verify."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import verifier
from verifier.testing.forge import Forged, Identity, encode_event, forge_event, item_json, snowflake

REPO = Path(__file__).resolve().parent.parent
SHARED_VECTORS = REPO / "tests" / "data" / "chat-xdk-sdk_vectors.json"
CONV = "1111:2222"
ALICE = Identity.from_seed("1111", "1", "alice")
BOB = Identity.from_seed("2222", "7", "bob")
MALLORY = Identity.from_seed("1111", "1", "mallory")  # claims Alice's id and version


def fixture() -> dict:
    return json.loads(SHARED_VECTORS.read_text())


def two_histories(seed: str, other_prefix: str):
    """A 60-event 1:1 history, a 12-event one of another conversation, and one keyring for both
    (for tests that cut a run into parts)."""
    from verifier.testing.forge import build_conversation

    members = [Identity.from_seed("1215441834412953600", "1765382634817", f"{seed}-a"),
               Identity.from_seed("1843439638876491776", "1736723828667", f"{seed}-b")]
    conv = build_conversation(60, members=members, seed=seed, realistic_crypto=False)
    other = build_conversation(12, seed=f"{seed}-other", realistic_crypto=False,
                               members=[Identity.from_seed("7", "1", f"{other_prefix}7"),
                                        Identity.from_seed("8", "1", f"{other_prefix}8")])
    ring = verifier.Keyring.from_json(json.dumps({"keys": conv.keyring()["keys"] + other.keyring()["keys"]}))
    return conv, other, ring


def keyring(*identities: Identity, fmt: str = "spki") -> verifier.Keyring:
    return verifier.Keyring.from_json(json.dumps({"keys": [i.keyring_entry(fmt) for i in identities]}))


def ev(kind: str = "MessageCreateEvent", body: dict | None = None, *, sender: Identity = ALICE,
       seq: int = 1, prev: int | None = None, **kw) -> Forged:
    body = body if body is not None else {"contents": b"\x01" * 40 + b"hello", "conversation_key_version": "1001"}
    kw.setdefault("conversation_id", CONV)
    return forge_event(sender, kind, body, sequence_id=None if seq is None else snowflake(1_784_841_000_000 + seq * 1000, seq),
                       previous_sequence_id=None if prev is None else snowflake(1_784_841_000_000 + prev * 1000, prev),
                       created_at_msec=str(1_784_841_000_000 + (seq or 0) * 1000), **kw)


def page(*events: Forged, meta_events: list[Forged] = (), shape: str = "2.166", **extra) -> dict:
    body = {"data": [item_json(e, shape) for e in events], **extra}
    if meta_events:
        body.setdefault("meta", {})["conversation_key_events"] = [e.b64 for e in meta_events]
    return body


def reencode(forged: Forged) -> Forged:
    raw = encode_event(forged.event)
    return Forged(forged.event, raw, base64.b64encode(raw).decode())


def verify(*pages, ring=None, **kw) -> verifier.Report:
    return verifier.verify_pages(list(pages), ring, **kw)


def events_of(report) -> list:
    return [e for c in report.conversations for e in c.events]


def sig_statuses(report) -> list[str]:
    return [e.signature.status for e in events_of(report)]


def chain_statuses(report) -> list[str]:
    return [e.chain.status for e in events_of(report)]


def codes(report) -> set[str]:
    return {f.code for e in events_of(report) for f in e.findings}


def run_cli(args, env: dict[str, str] | None = None, stdin: str | bytes | None = None):
    """``xchat-verify ARGS`` in this process (a ``CompletedProcess``): the same entry point as the
    console script, without paying for a new interpreter and its imports on every call. ``env``
    replaces the environment for the call, as a subprocess would see it. Tests of what only a real
    process shows (signals, the console script itself) run it as one."""
    import contextlib
    import io
    import os
    import subprocess
    import sys
    from unittest import mock

    from verifier.cli import main
    out, err = io.StringIO(), io.StringIO()
    argv = [str(a) for a in args]
    data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
    with mock.patch.dict(os.environ, env if env is not None else dict(os.environ), clear=True), \
            mock.patch.object(sys, "stdin", io.TextIOWrapper(io.BytesIO(data))), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors and --help/--version
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["xchat-verify", *argv], code, out.getvalue(), err.getvalue())


def write_history(folder: Path, conversation, pages: int) -> tuple[list[str], str]:
    """``conversation`` (``forge.build_conversation``) as ``pages`` page files and a keyring file."""
    files = []
    for number, body in enumerate(conversation.pages(pages), 1):
        path = folder / f"page-{number}.json"
        path.write_text(json.dumps(body))
        files.append(str(path))
    ring = folder / "ring.json"
    ring.write_text(json.dumps(conversation.keyring()))
    return files, str(ring)


def ids_state(column) -> tuple:
    """Everything a ``columns.Ids`` stores (forms, both number columns, kept strings): two columns
    with equal states give back the same values."""
    return bytes(column._form), column._a.tolist(), column._b.tolist(), dict(column._other)


def saved_as_audit(offline: dict, *, receipt: bool = False) -> dict:
    """``verify DIR --trust-evidence-keys`` (or ``--receipt-public-key``) JSON report as the audit that
    saved the evidence gave it: checks, then removes, the one thing the saved keys add (their
    finding, first; ``key_source`` naming the evidence; unauthenticated keys unless a receipt held)."""
    offline = json.loads(json.dumps(offline))
    first = offline["findings"].pop(0)
    code = "evidence_keys_vouched" if receipt else "evidence_keys_unauthenticated"
    assert (first["code"], first["severity"]) == (code, "info"), first
    source = "evidence+receipt" if receipt else "evidence"
    assert offline["key_source"].startswith(source), offline["key_source"]
    offline["key_source"] = "keyring" + offline["key_source"][len(source):]
    if not receipt:
        assert offline["proof"]["keys_authenticated"] is False
        offline["proof"]["keys_authenticated"] = not offline["proof"]["embedded_keys"]
    return offline
