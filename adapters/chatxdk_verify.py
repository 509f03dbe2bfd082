#!/usr/bin/env python3
"""The official X Chat SDK (``chatxdk``) as an implementation of the xchat-verify conformance
protocol, signatures profile (docs/vectors.md):

    python adapters/chatxdk_verify.py PAGE... [--keys KEYRING] [--strict] [--allow-empty]
                                      [--conversation-key VERSION=BASE64]...

    xchat-verify vectors vectors/ --profile signatures --impl "python adapters/chatxdk_verify.py"

Pages and keyrings are read as docs/formats.md says, with exit code 3 wherever xchat-verify cannot
read them. Every event (each page's ``data`` items, then its ``meta`` key-change events) is judged
by the SDK's strict ``decrypt_event`` with the keyring's rows as its ``signing_keys``, and the
SDK's answer becomes a signature status:

* verified, or a decryption error (the SDK checks the signature before it decrypts, and in strict
  mode an unverified event never reaches decryption): ``valid``;
* "signature_version N is no longer accepted": ``unsupported_version``;
* "signature verification failed": ``invalid``;
* "could not be verified: signature missing or no matching signing key" names five statuses at
  once; the adapter tells them apart with the event's signature metadata and the keyring, never
  overriding the SDK: no signature (``missing_signature``), no keyring row for the signer and
  version (``unknown_key``), only rows whose identity binding the SDK refuses
  (``key_binding_invalid``), a version 6+ key change without its conversation key
  (``needs_conversation_key``), else ``unverifiable``;
* returned without a verdict (typing, failures, unknown kinds; also a message without contents,
  which the SDK shows as "Unknown"): ``not_signed``;
* a parse or base64 error: ``malformed``.

Only signatures are judged: no chain statuses and no findings are reported. The SDK never uses
keys carried inside events, so ``--allow-embedded-keys`` is refused (exit 2). The verdict is
``pass`` when no event fails its signature and at least one verified (or ``--allow-empty``).
Needs only the standard library and ``chatxdk``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import gzip
import json
import re
import struct
import sys
import zlib
from typing import Any

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_UNREADABLE, EXIT_INTERNAL = 0, 1, 2, 3, 4
FAILING = {"invalid", "unsupported_version", "unknown_key", "key_binding_invalid", "missing_signature",
           "unverifiable", "malformed"}
KEY_CHANGE = 3  # MessageEventDetail member id of ConversationKeyChangeEvent


class Unreadable(Exception):
    """An input xchat-verify could not read either (exit 3)."""


# ------------------------------------------------------------------------------------ pages
def read_file(path: str) -> bytes:
    try:
        data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()
    except OSError as exc:
        raise Unreadable(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if data.startswith(b"\x1f\x8b"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise Unreadable(f"{path}: not valid gzip: {exc}") from None
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def page_bodies(path: str) -> list[Any]:
    """One JSON body, or JSON Lines with one body per line."""
    data = read_file(path)
    try:
        return [json.loads(data)]
    except (ValueError, RecursionError):
        pass
    lines = [line for line in data.split(b"\n") if line.strip()]
    try:
        if len(lines) > 1:
            return [json.loads(line) for line in lines]
    except (ValueError, RecursionError):
        pass
    raise Unreadable(f"{path}: not a JSON document nor JSON Lines")


def page_events(body: Any, source: str) -> list[Any]:
    """The encoded events of one body, in report order: ``data`` items, then ``meta`` key changes
    (a non-string stands for an event that cannot be read)."""
    if not isinstance(body, dict):
        raise Unreadable(f"{source}: not a JSON object at the top level")
    data, meta, errors = body.get("data"), body.get("meta"), body.get("errors")
    if data is None:
        if errors is not None:
            raise Unreadable(f"{source}: the API answered with an error instead of events")
        if meta is None:
            raise Unreadable(f"{source}: not an events page: it has no data, meta or errors member")
    if data is not None and not isinstance(data, list):
        raise Unreadable(f"{source}: `data` is not an array")
    if meta is not None and not isinstance(meta, dict):
        raise Unreadable(f"{source}: `meta` is not an object")
    events = [item.get("encoded_event") if isinstance(item, dict) else None for item in data or []]
    for name in ("conversation_key_events", "missing_conversation_key_change_events"):
        extra = (meta or {}).get(name)
        if extra is None:
            continue
        if not isinstance(extra, list):
            raise Unreadable(f"{source}: `meta.{name}` is not an array")
        events += extra
    return events


# ---------------------------------------------------------------------------------- keyring
P = 2 ** 256 - 2 ** 224 + 2 ** 192 + 2 ** 96 - 1
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


def usable_p256_key(text: str) -> bool:
    """Base64 SEC1 (33 or 65 bytes) or SPKI (91 bytes) holding a point of P-256."""
    if not isinstance(text, str):
        return False
    body = text.rstrip("=")
    if len(text) - len(body) > -len(body) % 4:  # the SDK takes absent or partial padding, not excess
        return False
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) == 91 and raw.startswith(SPKI_PREFIX):
        raw = raw[len(SPKI_PREFIX):]
    if len(raw) == 65 and raw[0] == 4:
        x, y = int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big")
        return x < P and y < P and (y * y - (x ** 3 - 3 * x + B)) % P == 0
    if len(raw) == 33 and raw[0] in (2, 3):
        x = int.from_bytes(raw[1:], "big")
        rhs = (x ** 3 - 3 * x + B) % P
        return x < P and (rhs == 0 or pow(rhs, (P - 1) // 2, P) == 1)
    return False


def keyring_rows(path: str) -> list[dict[str, str]]:
    """Every row of any keyring shape of docs/formats.md, in the SDK's ``signing_keys`` shape."""
    try:
        doc = json.loads(read_file(path))
    except (ValueError, RecursionError):
        raise Unreadable(f"keyring {path}: not JSON") from None
    if isinstance(doc, list):
        listed = [(row, None) for row in doc]
    elif isinstance(doc, dict) and isinstance(doc.get("keys"), list):
        listed = [(row, None) for row in doc["keys"]]
    elif isinstance(doc, dict):
        listed = []
        for user_id, body in doc.items():
            rows = (body.get("data") or []) if isinstance(body, dict) else None
            if not isinstance(rows, list):
                raise Unreadable(f"keyring {path}: the entry for user {user_id} is not a public_keys body")
            for row in rows:
                if isinstance(row, dict) and row.get("user_id") not in (None, user_id):
                    raise Unreadable(f"keyring {path}: the keys of user {user_id} include another user's row")
                listed.append((row, user_id))
    else:
        raise Unreadable(f"keyring {path}: must be an object or a list")
    out = []
    for number, (row, user_id) in enumerate(listed, 1):
        if not isinstance(row, dict):
            raise Unreadable(f"keyring {path}: entry {number} is not an object")
        version = row.get("public_key_version", row.get("version"))
        if isinstance(version, int) and not isinstance(version, bool):
            version = str(version)
        fields = {"user_id": row.get("user_id", user_id), "public_key_version": version,
                  "public_key": row.get("signing_public_key"),
                  "identity_public_key": row.get("public_key") or "",
                  "identity_public_key_signature": row.get("identity_public_key_signature") or ""}
        if not all(isinstance(value, str) for value in fields.values()):
            raise Unreadable(f"keyring {path}: entry {number} lacks a string user_id, version or signing key")
        if not usable_p256_key(fields["public_key"]):
            raise Unreadable(f"keyring {path}: entry {number}: the signing key is not a P-256 key")
        out.append(fields)
    return out


# ------------------------------------------------------------- signature metadata (narrowing)
class _Reader:
    """Just enough Thrift binary to read an event's sender, signature metadata and detail kind
    (only ever used to name which 'could not be verified' the SDK meant)."""

    SIZES = {2: 1, 3: 1, 4: 8, 6: 2, 8: 4, 10: 8, 16: 16}

    def __init__(self, raw: bytes) -> None:
        self.raw, self.pos = raw, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.raw):
            raise ValueError("truncated")
        self.pos += n
        return self.raw[self.pos - n:self.pos]

    def header(self) -> tuple[int, int]:
        ttype = self.take(1)[0]
        return (0, 0) if ttype == 0 else (ttype, struct.unpack(">h", self.take(2))[0])

    def string(self) -> bytes:
        return self.take(struct.unpack(">i", self.take(4))[0])

    def skip(self, ttype: int, depth: int = 0) -> None:
        if depth > 64:
            raise ValueError("too deep")
        if ttype in self.SIZES:
            self.take(self.SIZES[ttype])
        elif ttype == 11:
            self.string()
        elif ttype == 12:
            self.fields(lambda fid, t: self.skip(t, depth + 1))
        elif ttype == 13:
            ktype, vtype = self.take(1)[0], self.take(1)[0]
            for _ in range(struct.unpack(">i", self.take(4))[0]):
                self.skip(ktype, depth + 1)
                self.skip(vtype, depth + 1)
        elif ttype in (14, 15):
            etype = self.take(1)[0]
            for _ in range(struct.unpack(">i", self.take(4))[0]):
                self.skip(etype, depth + 1)
        else:
            raise ValueError(f"wire type {ttype}")

    def fields(self, visit: Any) -> None:
        while True:
            ttype, fid = self.header()
            if ttype == 0:
                return
            visit(fid, ttype)


def signature_metadata(encoded: str) -> dict[str, Any] | None:
    """``{sender, signature: {1: sig, 2: key version, 3: signature version} | None, kind,
    key_version}`` of an encoded event, or None if it cannot be read."""
    out: dict[str, Any] = {"sender": None, "signature": None, "kind": None, "key_version": None}
    try:
        reader = _Reader(base64.b64decode(encoded))

        def strings(target: dict, wanted: set[int]) -> Any:
            def visit(fid: int, ttype: int) -> None:
                if fid in wanted and ttype == 11:
                    target[fid] = reader.string().decode("utf-8", "replace")
                else:
                    reader.skip(ttype)
            return visit

        def detail(fid: int, ttype: int) -> None:
            out["kind"] = fid
            if fid == KEY_CHANGE and ttype == 12:
                found: dict[int, str] = {}
                reader.fields(strings(found, {1}))
                out["key_version"] = found.get(1)
            else:
                reader.skip(ttype)

        def top(fid: int, ttype: int) -> None:
            if fid == 3 and ttype == 11:
                out["sender"] = reader.string().decode("utf-8", "replace")
            elif fid == 9 and ttype == 12:
                out["signature"] = {}
                reader.fields(strings(out["signature"], {1, 2, 3}))
            elif fid == 7 and ttype == 12:
                reader.fields(detail)
            else:
                reader.skip(ttype)

        reader.fields(top)
    except (ValueError, struct.error, binascii.Error):
        return None
    return out


def signature_version(text: str | None) -> int:
    """As the SDK reads it (Rust ``i32`` parsing): anything that does not parse counts as 7."""
    if text is None or not re.fullmatch(r"[+-]?[0-9]+", text) or not -2 ** 31 <= int(text) < 2 ** 31:
        return 7
    return int(text)


def not_verifiable_because(chat: Any, encoded: str, rows: list[dict[str, str]], keys: dict[str, bytes]) -> str:
    meta = signature_metadata(encoded)
    if meta is None:
        return "unverifiable"
    sig = meta["signature"]
    if not sig or not sig.get(1):
        return "missing_signature"
    matching = [r for r in rows if r["user_id"] == meta["sender"] and r["public_key_version"] == sig.get(2)]
    if not matching:
        return "unknown_key"
    if not any(r["identity_public_key_signature"] and _binding_ok(chat, r) for r in matching):
        return "key_binding_invalid"
    if meta["kind"] == KEY_CHANGE and signature_version(sig.get(3)) >= 6 and meta["key_version"] not in keys:
        return "needs_conversation_key"
    return "unverifiable"


def _binding_ok(chat: Any, row: dict[str, str]) -> bool:
    try:
        return bool(chat.verify_key_binding(row["identity_public_key"], row["public_key"],
                                            row["identity_public_key_signature"]))
    except ValueError:
        return False


# --------------------------------------------------------------------------------- judging
def judge(chat: Any, encoded: Any, rows: list[dict[str, str]], keys: dict[str, bytes]) -> tuple[str, str]:
    if not isinstance(encoded, str):
        return "malformed", "encoded_event missing or not a string"
    try:
        result = chat.decrypt_event(encoded, conversation_keys=keys, signing_keys=rows)
    except ValueError as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if text.startswith(("Parse error", "Serialization error")):
            return "malformed", text
        if "could not be verified" in text:
            return not_verifiable_because(chat, encoded, rows, keys), text
        if "is no longer accepted" in text:
            return "unsupported_version", text
        if "signature verification failed" in text.lower():
            return "invalid", text
        if text.startswith("Crypto error: Decryption failed"):
            return "valid", "verified (then not decrypted: " + text + ")"
        return "unverifiable", text
    if "verified" not in result:
        return "not_signed", f"SDK: {result.get('type')} without a verdict"
    return ("valid", "verified") if result["verified"] else ("invalid", "not verified")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatxdk_verify", description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="+", metavar="PAGE")
    parser.add_argument("--keys", metavar="KEYRING")
    parser.add_argument("--strict", action="store_true", help="accepted; the adapter reports no warnings")
    parser.add_argument("--allow-empty", action="store_true")
    parser.add_argument("--allow-embedded-keys", action="store_true", help="refused: the SDK never uses them")
    parser.add_argument("--conversation-key", action="append", default=[], metavar="VERSION=BASE64")
    args = parser.parse_args(argv)
    if args.allow_embedded_keys:
        print("chatxdk_verify: --allow-embedded-keys is not supported: the SDK never uses keys carried in events",
              file=sys.stderr)
        return EXIT_USAGE
    keys = {}
    for value in args.conversation_key:
        version, _, b64 = value.partition("=")
        try:
            keys[version] = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            print("chatxdk_verify: --conversation-key must be VERSION=BASE64", file=sys.stderr)
            return EXIT_USAGE
    try:
        import chat_xdk
    except ImportError:
        print("chatxdk_verify: the chatxdk package is not installed (pip install chatxdk)", file=sys.stderr)
        return EXIT_INTERNAL
    try:
        rows = keyring_rows(args.keys) if args.keys else []
        encoded = [e for path in args.pages for body in page_bodies(path) for e in page_events(body, path)]
    except Unreadable as exc:
        print(f"chatxdk_verify: {exc}".encode("ascii", "backslashreplace").decode(), file=sys.stderr)
        return EXIT_UNREADABLE
    chat = chat_xdk.Chat()
    chat.set_reject_unverified(True)
    events = []
    for index, item in enumerate(encoded):
        status, detail = judge(chat, item, rows, keys)
        events.append({"index": index, "signature": {"status": status, "detail": detail}, "findings": []})
    statuses = [e["signature"]["status"] for e in events]
    proven = "valid" in statuses or args.allow_empty
    verdict = "pass" if rows and proven and not FAILING.intersection(statuses) else "fail"
    report = {"implementation": f"chatxdk {_sdk_version()} (adapters/chatxdk_verify.py)", "profile": "signatures",
              "verdict": verdict, "conversations": [{"events": events}], "findings": []}
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    return EXIT_PASS if verdict == "pass" else EXIT_FAIL


def _sdk_version() -> str:
    try:
        from importlib.metadata import version
        return version("chatxdk")
    except Exception:  # noqa: BLE001 - only a label
        return "unknown"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - one line, no traceback, and never exit 3
        print(f"chatxdk_verify: internal error: {type(exc).__name__}: {exc}".encode("ascii", "backslashreplace")
              .decode(), file=sys.stderr)
        sys.exit(EXIT_INTERNAL)
