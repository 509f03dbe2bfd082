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
from typing import Any

from .errors import InputError, UsageError

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


def load_signing_key(path: str | os.PathLike) -> Any:
    from nacl.signing import SigningKey
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("type") != PRIVATE_TYPE:
            raise ValueError("not an xchat-verify receipt key")
        seed = base64.b64decode(data["private_key"], validate=True)
        if len(seed) != 32:
            raise ValueError("the private key is not 32 bytes")
        return SigningKey(seed)
    except OSError as exc:
        raise ReceiptError(f"cannot read receipt key {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise ReceiptError(f"{path} is not a usable receipt key: {exc}") from None


def load_verify_key(value: str) -> Any:
    """A public key: a ``.pub`` (or private key) file, or the base64 key itself."""
    from nacl.signing import VerifyKey
    text = value
    if os.path.exists(value):
        try:
            text = Path(value).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ReceiptError(f"cannot read public key {value}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
            if isinstance(data, dict):
                text = data.get("public_key", "")
        except ValueError:
            pass
    try:
        raw = base64.b64decode(str(text).strip(), validate=True)
        if len(raw) != 32:
            raise ValueError(f"{len(raw)} bytes, expected 32")
        return VerifyKey(raw)
    except (ValueError, binascii.Error) as exc:
        raise ReceiptError(f"public key {value!r:.80} is not a base64 Ed25519 key: {exc}") from None


def sign_checkpoint(checkpoint: dict, key: Any) -> dict:
    body = dict(checkpoint)
    body["public_key"] = base64.b64encode(bytes(key.verify_key)).decode()
    body["signature"] = base64.b64encode(key.sign(canonical(body)).signature).decode()
    return body


def check_signature(document: dict, verify_key: Any | None = None) -> str:
    """'' when ``document['signature']`` verifies over the rest (with ``verify_key``, else with the
    document's own ``public_key``, which proves integrity only), else why not."""
    from nacl.exceptions import BadSignatureError
    body = {k: v for k, v in document.items() if k != "signature"}
    try:
        signature = base64.b64decode(document.get("signature") or "", validate=True)
    except (ValueError, binascii.Error):
        return "the signature is not base64"
    if verify_key is None:
        verify_key = load_verify_key(str(document.get("public_key", "")))
    elif document.get("public_key") not in (None, base64.b64encode(bytes(verify_key)).decode()):
        return "signed by another key than the one given"
    try:
        verify_key.verify(canonical(body), signature)
    except (BadSignatureError, ValueError):
        return "the signature does not verify"
    return ""


def file_digest(path: str | os.PathLike) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def evidence_report_digest(root: str | os.PathLike) -> str:
    """The report an evidence directory reproduces (``verify DIR``, its saved keys, no ledger), with
    input sources relative to the directory so the digest does not depend on where it is kept."""
    import msgspec

    from .audit import verify_saved_audit
    report = verify_saved_audit(str(root))
    prefix = str(root).rstrip("/") + "/"
    for inp in report.inputs:
        if inp.source.startswith(prefix):
            inp.source = inp.source[len(prefix):]
    return hashlib.sha256(msgspec.json.encode(report, order="sorted")).hexdigest()


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
    (a ``--format json`` report), its digest."""
    if not isinstance(receipt, dict) or receipt.get("schema") != RECEIPT_SCHEMA:
        return ["not an xchat-verify receipt"]
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
            if file_digest(manifest) != receipt["evidence_manifest_digest"]:
                problems.append("the evidence manifest differs from the one the receipt signs")
            from .errors import EvidenceError
            try:
                digest = evidence_report_digest(evidence_dir)
            except EvidenceError as exc:
                problems.append(f"the evidence cannot be verified: {exc}")
            else:
                if digest != receipt.get("evidence_report_digest"):
                    problems.append("the evidence no longer reproduces the report the receipt signs")
    if report_path is not None:
        import msgspec
        try:
            data = msgspec.json.decode(Path(report_path).read_bytes())
        except (OSError, msgspec.DecodeError) as exc:
            raise ReceiptError(f"cannot read report {report_path}: {exc}") from None
        if hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest() != receipt.get("report_digest"):
            problems.append("the report differs from the one the receipt signs")
    return problems
