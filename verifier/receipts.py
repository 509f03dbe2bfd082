"""Signed audit receipts (Ed25519, PyNaCl): proof that an audit happened and what it found.

A receipt is ``receipt.json``: the canonical JSON (keys sorted, no whitespace, UTF-8) of

    {"schema": "xchat-verify/receipt/v1", "tool_version", "time", "verdict",
     "report_digest",            // SHA-256 of the final report's canonical JSON (ledger findings included)
     "evidence_manifest_digest", // SHA-256 of the --save directory's manifest.json, or null
     "evidence_report_digest",   // SHA-256 of the report the evidence alone reproduces, or null
     "checkpoints": [...],       // every conversation's checkpoint (conversation, tail, head, size, root)
     "ledger_audit": int|null, "public_key": base64}

signed with the receipt key; the signature (base64) is added as ``signature``. Keys are files of
JSON: the private key file (mode 0600) holds the 32-byte seed and the public key, ``FILE.pub`` the
public key alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any

import msgspec

from .errors import InputError, UsageError
from .sanitize import encodable, printable

RECEIPT_SCHEMA = "xchat-verify/receipt/v1"
PRIVATE_TYPE = "xchat-verify/receipt-key/v1"
PUBLIC_TYPE = "xchat-verify/receipt-public-key/v1"


class ReceiptError(InputError):
    """A receipt or receipt key that cannot be used (exit 3)."""


def canonical(obj: Any) -> bytes:
    """Canonical JSON: keys sorted, no whitespace, UTF-8; only strings, integers, booleans, null."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _write_private(path: Path, data: bytes) -> None:
    """Atomically, mode 0600 from the first byte (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def new_receipt_key(path: str | os.PathLike, force: bool = False) -> str:
    """Write a new Ed25519 key to ``path`` (0600) and its public key to ``path.pub``; returns the
    public key (base64). Refuses to overwrite a key unless ``force``."""
    from nacl.signing import SigningKey
    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{path} exists: refusing to overwrite a key (pass --force)")
    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    private = {"type": PRIVATE_TYPE, "private_key": base64.b64encode(bytes(key)).decode(), "public_key": public}
    try:
        _write_private(target, (json.dumps(private, indent=2) + "\n").encode())
        from .outputs import atomic_write_text
        atomic_write_text(str(target) + ".pub", json.dumps({"type": PUBLIC_TYPE, "public_key": public}, indent=2) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return public


MAX_KEY_BYTES = 64 * 1024  # a key file is a few hundred bytes
MAX_RECEIPT_BYTES = 16 * 1024 * 1024
_HEX64 = msgspec.Meta(pattern="^[0-9a-f]{64}$")


class _PrivateKeyFile(msgspec.Struct):
    type: str
    private_key: str
    public_key: str | None = None


class _PublicKeyFile(msgspec.Struct):
    type: str
    public_key: str


class ReceiptCheckpoint(msgspec.Struct, forbid_unknown_fields=True):
    conversation: str
    tail: str | None
    head: str | None
    size: Annotated[int, msgspec.Meta(ge=0, le=2 ** 53)]
    root: Annotated[str, _HEX64]


class Receipt(msgspec.Struct, forbid_unknown_fields=True):
    """A receipt as read from a file (docs/formats.md): every field typed, nothing else allowed."""

    schema: str
    tool_version: str
    time: str
    verdict: str
    report_digest: Annotated[str, _HEX64]
    evidence_manifest_digest: Annotated[str, _HEX64] | None
    evidence_report_digest: Annotated[str, _HEX64] | None
    checkpoints: list[ReceiptCheckpoint]
    ledger_audit: Annotated[int, msgspec.Meta(ge=1, le=2 ** 53)] | None
    public_key: str
    signature: str


def _read_key_file(path: str | os.PathLike, what: str) -> bytes:
    from .inputs import read_regular_file
    return read_regular_file(path, MAX_KEY_BYTES, f"{what} {printable(str(path))}", ReceiptError)


def load_signing_key(path: str | os.PathLike) -> Any:
    """The receipt key in ``path`` (a regular file of at most 64 KiB; never quoted in errors)."""
    from nacl.signing import SigningKey
    data = _read_key_file(path, "receipt key")
    try:
        key = msgspec.json.decode(data, type=_PrivateKeyFile)
        if key.type != PRIVATE_TYPE:
            raise ValueError("not an xchat-verify receipt key")
        seed = base64.b64decode(key.private_key, validate=True)
        if len(seed) != 32:
            raise ValueError("the private key is not 32 bytes")
        return SigningKey(seed)
    except (msgspec.DecodeError, ValueError, binascii.Error, RecursionError) as exc:
        # round 105: JSON nested too deep for the decoder ended as an internal error (RecursionError)
        reason = "JSON nested too deeply to read" if isinstance(exc, RecursionError) else \
            "not a JSON receipt key file" if isinstance(exc, msgspec.DecodeError) and \
            not isinstance(exc, msgspec.ValidationError) else str(exc)
        raise ReceiptError(f"{printable(str(path))} is not a usable receipt key: {printable(reason)}") from None


def verify_key_value(text: object) -> Any:
    """A public key given as a value (base64 of 32 bytes), never a path: keys inside checkpoints and
    receipts are values only. Raises ``ReceiptError``."""
    from nacl.signing import VerifyKey
    if not isinstance(text, str) or len(text) > 256:
        raise ReceiptError("the public key is not a base64 Ed25519 key")
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (ValueError, binascii.Error):
        raise ReceiptError("the public key is not a base64 Ed25519 key") from None
    if len(raw) != 32:
        raise ReceiptError(f"the public key is {len(raw)} bytes, not a 32-byte Ed25519 key")
    return VerifyKey(raw)


def load_verify_key(value: str) -> Any:
    """A public key given on the command line: the base64 key itself, or else a ``.pub`` file (never
    the private key file: ``ReceiptError``), read bounded (a regular file of at most 64 KiB). The key
    wins over a file of the same name: review 62 made the trusted key's base64 a path (a directory and a file inside) holding the
    forger's key, and `receipt verify` run there used that file."""
    try:
        return verify_key_value(value)
    except ReceiptError:
        if not os.path.exists(value):
            raise ReceiptError(f"public key {printable(value[:80])}: no such file, and not a base64 Ed25519 "
                               "key") from None
    data = _read_key_file(value, "public key")
    if _is_private_key_file(data):  # round 67/80: it was taken silently, inviting the auditor to hand it out
        raise ReceiptError(f"public key {printable(value)} is the PRIVATE receipt key, which signs receipts and "
                           "stays with the auditor: give its public key (the .pub file beside it, or the "
                           "base64 key in it)")
    text: object = data.decode("utf-8", "replace").strip()
    try:
        text = msgspec.json.decode(data, type=_PublicKeyFile).public_key
    except (msgspec.DecodeError, RecursionError):  # round 105: RecursionError was an internal error
        pass
    try:
        return verify_key_value(text)
    except ReceiptError as exc:
        raise ReceiptError(f"public key {printable(value)}: {exc}") from None


def _is_private_key_file(data: bytes) -> bool:
    try:
        return msgspec.json.decode(data, type=_PrivateKeyFile).type == PRIVATE_TYPE
    except (msgspec.DecodeError, RecursionError):
        return False


def sign_checkpoint(checkpoint: dict, key: Any) -> dict:
    body = dict(checkpoint)
    body["public_key"] = base64.b64encode(bytes(key.verify_key)).decode()
    body["signature"] = base64.b64encode(key.sign(canonical(body)).signature).decode()
    return body


def check_signature(document: dict, verify_key: Any | None = None) -> str:
    """'' when ``document['signature']`` verifies over the rest (with ``verify_key``, else with the
    document's own ``public_key``, a value only, which proves integrity only), else why not."""
    from nacl.exceptions import BadSignatureError
    body = {k: v for k, v in document.items() if k != "signature"}
    text = document.get("signature")
    if not isinstance(text, str):
        return "the signature is missing or not a string"
    try:
        signature = base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return "the signature is not base64"
    if base64.b64encode(signature).decode() != text:  # review 62: unused low bits made one file many
        return "the signature is not canonical base64"
    if verify_key is None:
        try:
            verify_key = verify_key_value(document.get("public_key"))
        except ReceiptError as exc:
            return f"the embedded public key cannot be used: {exc}"
    elif document.get("public_key") not in (None, base64.b64encode(bytes(verify_key)).decode()):
        return "signed by another key than the one given"
    try:
        verify_key.verify(canonical(body), signature)
    except (BadSignatureError, ValueError, TypeError):
        return "the signature does not verify"
    return ""


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in chunks (bounded memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Duplicate(Exception):
    pass


def duplicate_key(data: bytes) -> str | None:
    """A key some JSON object names twice, else None. Such a file means two things to two readers
    (msgspec and the digest take the last, a person or grep the first; review: a report file with a
    second ``"verdict": "pass"`` before the signed ``fail`` verified). Each object is dropped once
    checked, so a large report costs little memory."""
    def check(pairs: list[tuple[str, Any]]) -> int:
        keys = [key for key, _value in pairs]
        if len(set(keys)) != len(keys):
            raise _Duplicate(next(key for at, key in enumerate(keys) if key in keys[:at]))
        return 0

    try:
        json.loads(data, object_pairs_hook=check)
    except _Duplicate as found:
        return str(found.args[0])
    except RecursionError:  # cannot be checked: refused, never taken as checked (review)
        return "(nested too deeply to check)"
    except ValueError:
        return None  # not JSON: the decoder that follows says so precisely
    return None


def parse_receipt(data: bytes, name: str = "receipt") -> dict:
    """A receipt file's content, checked field by field (``Receipt``); returns the JSON object as
    written (its canonical form is what the signature covers). Raises ``ReceiptError`` naming the
    field."""
    try:
        msgspec.json.decode(data, type=Receipt)
    except msgspec.ValidationError as exc:
        raise ReceiptError(f"{name} is not a valid receipt: {printable(str(exc))}") from None
    except msgspec.DecodeError:
        raise ReceiptError(f"{name} is not JSON") from None
    twice = duplicate_key(data)
    if twice is not None:
        raise ReceiptError(f"{name} is not a valid receipt: it names the key {printable(repr(twice)[:60])} twice")
    document = msgspec.json.decode(data)
    if document.get("schema") != RECEIPT_SCHEMA:
        raise ReceiptError(f"{name} is not an xchat-verify receipt ($.schema is not {RECEIPT_SCHEMA})")
    return document


def evidence_report_digest(root: str | os.PathLike) -> str:
    """The report an evidence directory reproduces (``verify DIR``, its saved keys, no ledger), with
    input sources relative to the directory so the digest does not depend on where it is kept."""
    return evidence_report_digests(root)[0]


def evidence_report_digests(root: str | os.PathLike) -> list[str]:
    """``evidence_report_digest``, then the digest of the same report with its sources as the engine
    names them (``Path(root) / name``), which earlier releases signed when ``root`` was written in
    another form (``./ev``, ``ev/.``): they stripped the prefix as written, which those sources never
    start with (round 105: ``audit --save ./ev`` made a receipt that failed under ``--evidence ev``,
    and an honest receipt failed under ``--evidence ./ev``)."""
    from .audit import verify_saved_audit
    report = _as_receipts_sign_it(verify_saved_audit(str(root), trust_evidence_keys=True))
    named = [inp.source for inp in report.inputs]
    prefix = encodable(str(Path(root))).rstrip("/") + "/"  # as the engine names the sources
    for inp in report.inputs:
        if inp.source.startswith(prefix):
            inp.source = inp.source[len(prefix):]
    digests = [hashlib.sha256(msgspec.json.encode(report, order="sorted")).hexdigest()]
    for inp, source in zip(report.inputs, named):
        inp.source = source
    digests.append(hashlib.sha256(msgspec.json.encode(report, order="sorted")).hexdigest())
    return digests


def _as_receipts_sign_it(report: Any) -> Any:
    """The evidence's report in the form receipts have always signed: its saved keys labelled as
    the audit's keyring. (Review 66: since ``verify DIR`` judges the saved keys, which adds a
    finding and relabels them, every earlier receipt read as tampered; the digest is about what
    the evidence holds, which that label does not change.)"""
    first = report.findings[0] if report.findings else None
    if first is not None and first.code == "evidence_keys_unauthenticated":
        report.findings = report.findings[1:]
        report.key_source = report.key_source.replace("evidence", "keyring", 1)
        report.proof.keys_authenticated = report.proof.embedded_keys == 0
    return report


def _unfolded_journal_records(root: str | os.PathLike) -> int:
    from .evidence import EvidenceStore
    return EvidenceStore.open(Path(root)).unfolded


def make_receipt(*, key: Any, tool_version: str, time: str, verdict: str, report_digest: str,
                 checkpoints: list[dict], evidence_dir: str | None, ledger_audit: int | None) -> dict:
    manifest = Path(evidence_dir) / "manifest.json" if evidence_dir else None
    body = {
        "schema": RECEIPT_SCHEMA, "tool_version": tool_version, "time": time, "verdict": verdict,
        "report_digest": report_digest,
        "evidence_manifest_digest": file_digest(manifest) if manifest is not None else None,
        "evidence_report_digest": evidence_report_digest(evidence_dir) if evidence_dir else None,
        "checkpoints": [{k: c[k] for k in ("conversation", "tail", "head", "size", "root")} for c in checkpoints],
        "ledger_audit": ledger_audit,
        "public_key": base64.b64encode(bytes(key.verify_key)).decode(),
    }
    body["signature"] = base64.b64encode(key.sign(canonical(body)).signature).decode()
    return body


def verify_receipt(receipt: dict, verify_key: Any, evidence_dir: str | None = None,
                   report_path: str | None = None) -> list[str]:
    """Every reason the receipt does not hold ([] when it does): the signature under ``verify_key``;
    with ``evidence_dir``, the manifest and the report the evidence reproduces; with ``report_path``
    (a ``--format json`` report), its digest. ``verify_key`` is required: the receipt's own
    ``public_key`` proves nothing (round 105: None checked it under that key, and a receipt anyone
    signed held)."""
    if verify_key is None or not hasattr(verify_key, "verify"):
        raise UsageError("verify_receipt needs the signer's public key (receipts.load_verify_key): the "
                         "receipt's own public_key proves nothing")
    if not isinstance(receipt, dict) or receipt.get("schema") != RECEIPT_SCHEMA:
        return ["not an xchat-verify receipt"]
    try:
        msgspec.convert(receipt, Receipt)
    except msgspec.ValidationError as exc:
        raise ReceiptError(f"not a valid receipt: {printable(str(exc))}") from None
    problems = []
    why = check_signature(receipt, verify_key)
    if why:
        problems.append(why)
    if evidence_dir is not None:
        manifest = Path(evidence_dir) / "manifest.json"
        if receipt.get("evidence_manifest_digest") is None:
            problems.append("the receipt names no evidence (the audit ran without --save)")
        elif not manifest.is_file():
            problems.append(f"{evidence_dir} has no manifest.json")
        else:
            from .errors import EvidenceError
            from .evidence import control_file_digest
            try:
                if control_file_digest(manifest) != receipt["evidence_manifest_digest"]:
                    problems.append("the evidence manifest differs from the one the receipt signs")
                unfolded = _unfolded_journal_records(evidence_dir)
                if unfolded:  # review 65: a planted journal line swapped the saved keys under a valid receipt
                    problems.append(f"the evidence has {unfolded} journal record(s) after the manifest the receipt "
                                    "signs (a run ends by folding its journal in): it changed since")
            except EvidenceError as exc:
                problems.append(f"the evidence manifest cannot be read: {exc}")
            try:
                digests = evidence_report_digests(evidence_dir)
            except EvidenceError as exc:
                problems.append(f"the evidence cannot be verified: {exc}")
            else:
                if receipt.get("evidence_report_digest") not in digests:
                    problems.append("the evidence no longer reproduces the report the receipt signs")
    if report_path is not None:
        from .inputs import DEFAULT_MAX_FILE_MB, read_regular_file
        raw = read_regular_file(report_path, DEFAULT_MAX_FILE_MB * 1024 * 1024, f"report {printable(report_path)}",
                                ReceiptError)
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise ReceiptError(f"report {printable(report_path)} is not JSON") from None
        except RecursionError:
            raise ReceiptError(f"report {printable(report_path)} is nested too deeply to read") from None
        twice = duplicate_key(raw)
        if twice is not None:  # not a file xchat-verify writes: readers would disagree on what it says
            problems.append(f"the report names the key {printable(repr(twice)[:60])} twice in one object: it is "
                            "not the report the receipt signs")
        elif hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest() != receipt.get("report_digest"):
            problems.append("the report differs from the one the receipt signs")
    return problems
