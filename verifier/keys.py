"""Signing keys: parsing (SEC1/SPKI), the ECDSA check, identity bindings and the keyring."""

from __future__ import annotations

import contextlib
import hashlib
import reprlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat
from operator import add, getitem
from typing import Any

import msgspec
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from .errors import KeyringError, MalformedEvent
from .model import Code
from .pages import json_value_bound
from .paging import problem_summary
from .sanitize import printable
from .settings import RetryPolicy
from .wire import b64decode_strict, compiled_twin

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ECDSA_PREHASHED = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
_EMPTY_SHA256 = hashlib.sha256().copy  # (of an object never updated)


class UnusableKey(KeyringError):
    """A public key that cannot be parsed as a P-256 key, with the reason."""


@lru_cache(maxsize=4096)
def parse_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """Base64 SEC1 (33/65 bytes) or SPKI DER (91 bytes) P-256 key; parsed once per distinct string."""
    try:
        raw = b64decode_strict(text, "public key")
    except MalformedEvent as exc:
        raise UnusableKey(str(exc)) from None
    return parse_public_key_bytes(raw)


# A P-256 key's SubjectPublicKeyInfo in DER: this header (id-ecPublicKey, prime256v1, a 66-byte bit
# string) and then the key's uncompressed point, the form every keyring and event carries
_P256_SPKI_HEADER = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")


def parse_public_key_bytes(raw: bytes) -> ec.EllipticCurvePublicKey:
    try:
        if len(raw) == 91:
            if raw.startswith(_P256_SPKI_HEADER):
                with contextlib.suppress(ValueError):  # (then the DER parser below gives the reason)
                    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw[len(_P256_SPKI_HEADER):])
            # Any other SPKI: the DER parser, imported only now (with the SSH formats, its module costs
            # a run about 3 ms of start-up; the usual form above needs no parser)
            from cryptography.hazmat.primitives.serialization import load_der_public_key
            key = load_der_public_key(raw)
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
                raise UnusableKey("SPKI key is not a P-256 key")
            return key
        if len(raw) in (33, 65):
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except UnusableKey:
        raise
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # a bent SPKI can name any algorithm
        raise UnusableKey(f"not a valid P-256 public key: {exc}") from None
    raise UnusableKey(f"public key of {len(raw)} bytes (expected 33, 65 or 91)")


def key_identity(key: ec.EllipticCurvePublicKey) -> bytes:
    """Encoding-independent identity of a key (uncompressed point), to compare SEC1 with SPKI. From
    the key's numbers, not ``public_bytes``: its encoding names are in ``serialization``, whose
    import (the SSH formats) costs every run more than this does the few keys it reads."""
    numbers = key.public_numbers()
    return b"\x04" + numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


_ORDER_BYTES = P256_ORDER.to_bytes(32, "big")
_ZERO = bytes(32)


def raw_signature_to_der(sig: bytes) -> bytes:
    """Raw r||s (exactly 64 bytes, 0 < r,s < n) to DER; raises ``ValueError`` with the reason.

    Built with byte operations (big-endian scalars of equal length compare as bytes); the same
    DER as ``encode_dss_signature`` (tests/test_keys.py)."""
    if _compiled_der is not None:  # the compiled twin: DER for a valid signature, else None
        der = _compiled_der(sig)
        if der is not None:
            return der
    if len(sig) != 64:
        raise ValueError(f"signature is {len(sig)} bytes, expected 64 (raw r||s)")
    r, s = sig[:32], sig[32:]
    if not (_ZERO < r < _ORDER_BYTES and _ZERO < s < _ORDER_BYTES):
        raise ValueError("signature scalar out of range")
    if sig[0] and sig[32]:  # no leading zero byte to strip (all but 1 in 128 signatures): headers only
        high_r, high_s = sig[0] >> 7, sig[32] >> 7
        return _SEQUENCE[high_r + high_s] + _INTEGER[high_r] + r + _INTEGER[high_s] + s
    body = _der_integer(r) + _der_integer(s)
    return b"\x30" + bytes((len(body),)) + body


# tests/test_cfastwire.py compares the compiled twin with the byte operations above
_compiled_der: Callable[[object], bytes | None] | None = compiled_twin("signature_der")

_INTEGER = (b"\x02\x20", b"\x02\x21\x00")  # a 32-byte scalar, with a 0 before a high bit
_SEQUENCE = (b"\x30\x44", b"\x30\x45", b"\x30\x46")  # by the number of high bits


def raw_signatures_to_der(sigs: list[bytes]) -> list[bytes | None]:
    """``raw_signature_to_der`` of each signature at once, None where that must decide on its own:
    a signature not 64 bytes long, or a scalar whose first byte is 0 (a zero to strip) or 0xFF
    (maybe not below the order): about 1 in 64. Why: in pure Python that call cost about 0.6 µs
    an event; here each step is one C pass over the batch (the first bytes read as two strided
    slices, each DER joined from its two headers and scalars)."""
    if _compiled_der is not None:
        return list(map(_compiled_der, sigs))
    count = len(sigs)
    if list(map(len, sigs)).count(64) != count:
        return [None] * count
    joined = b"".join(sigs)
    codes = bytes(map(add, joined[0::64].translate(_R_CODES), joined[32::64].translate(_S_CODES)))
    scalars_r: Iterable[bytes] = map(getitem, sigs, repeat(_R))  # type: ignore[arg-type]  # (any bytes-like)
    scalars_s: Iterable[bytes] = map(getitem, sigs, repeat(_S))  # type: ignore[arg-type]
    ders: list[bytes | None] = list(map(b"".join, zip(map(_HEADS.__getitem__, codes), scalars_r,
                                                      map(_MIDS.__getitem__, codes), scalars_s)))
    odd = codes.translate(_ODD)
    at = -1
    for _ in range(odd.count(1)):
        at = odd.find(1, at + 1)
        ders[at] = None
    return ders


# ``raw_signatures_to_der``'s tables: a scalar's first byte as 2 (r) or 1 (s) where its high bit is
# set, 0 where not, 4 where it is 0 or 0xFF; the sum of the two is each signature's code
_R_CODES = bytes(4 if byte in (0, 0xFF) else 2 * (byte >> 7) for byte in range(256))
_S_CODES = bytes(4 if byte in (0, 0xFF) else byte >> 7 for byte in range(256))
_ODD = bytes(1 if code > 3 else 0 for code in range(256))
_HEADS = [_SEQUENCE[(code >> 1) + (code & 1)] + _INTEGER[code >> 1] if code <= 3 else b"" for code in range(9)]
_MIDS = [_INTEGER[code & 1] if code <= 3 else b"" for code in range(9)]
_R, _S = slice(0, 32), slice(32, 64)


def sha256_all(texts: list[bytes]) -> bytes:
    """The SHA-256 digests of ``texts``, joined. Each from a copy of one empty hash object: a new
    ``hashlib.sha256`` sets up OpenSSL's digest context anew, about 0.2 of its 1.1 µs on an event's
    760 bytes (round 141), where a copy takes the set-up one."""
    digests = []
    for text in texts:
        digest = _EMPTY_SHA256()
        digest.update(text)
        digests.append(digest.digest())
    return b"".join(digests)


def verify_der(key: ec.EllipticCurvePublicKey, der: bytes, message: bytes) -> tuple[bool, str]:
    """``verify_raw`` of a signature ``raw_signatures_to_der`` converted already."""
    try:
        # the SHA-256 by hashlib, handed over as pre-hashed: the same digest, the same check, about 1 µs
        # less a verify than cryptography's own hashing (round 129, bench/README.md); from a copy of
        # an empty hash object, about 0.2 µs less than a new one (OpenSSL's set-up copied: round 141)
        digest = _EMPTY_SHA256()
        digest.update(message)
        key.verify(der, digest.digest(), _ECDSA_PREHASHED)
        return True, ""
    except InvalidSignature:
        return False, f"ECDSA mismatch (payload {len(message)} bytes)"


def _der_integer(scalar: bytes) -> bytes:
    digits = scalar.lstrip(b"\0")  # not empty: the scalar is not zero
    if digits[0] & 0x80:
        digits = b"\0" + digits
    return b"\x02" + bytes((len(digits),)) + digits


def verify_raw(key: ec.EllipticCurvePublicKey, sig: bytes, message: bytes) -> tuple[bool, str]:
    """ECDSA P-256/SHA-256 over ``message`` with a raw r||s signature; high S accepted, DER refused."""
    try:
        der = raw_signature_to_der(sig)
    except ValueError as exc:
        return False, str(exc)
    return verify_der(key, der, message)


def decode_signature(text: str | None) -> bytes:
    """Signature string to bytes; undecodable is empty, so it fails on length (as in the SDK)."""
    if text is None:
        return b""
    try:
        return b64decode_strict(text, "signature")
    except MalformedEvent:
        return b""


def verify_binding(identity_b64: str, signing: ec.EllipticCurvePublicKey, sig_b64: str) -> tuple[bool, str]:
    """The signing key must sign the identity key bytes *as given*, with a raw r||s signature: the
    SDK accepts nothing else (a DER binding fails there, so it fails here)."""
    try:
        identity = b64decode_strict(identity_b64, "identity key")
        sig = b64decode_strict(sig_b64, "identity_public_key_signature")
    except MalformedEvent as exc:
        return False, str(exc)
    if len(sig) != 64:
        return False, f"binding signature is {len(sig)} bytes, expected 64 raw r||s (DER is refused, as by the SDK)"
    return verify_raw(signing, sig, identity)


def version_key(version: str | None) -> str:
    """Key versions match exactly, as in the official SDK: ``"01"`` is not ``"1"`` (checked
    differentially). "Compare numerically" in the API docs is about ordering timestamps of different
    lengths; a keyring version written as a JSON number is turned into its decimal string on load."""
    return version or ""


def version_number(version: str | None) -> int | None:
    """A key or signature version as a number (leading ``+`` and zeros ignored); None for anything
    else, ``"²"`` and absurd lengths too (leading zeros are not length: review 43 served version 1 as
    19 characters). Matching stays exact (``version_key``); this is for ordering and for spotting one
    number spelled two ways."""
    text = (version or "").lstrip("+")
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else None


class KeyringEntry(msgspec.Struct, omit_defaults=True):
    user_id: str
    public_key_version: str
    signing_public_key: str
    public_key: str | None = None
    identity_public_key_signature: str | None = None


@dataclass
class TrustedKey:
    """A keyring key after checks: ``key`` is None when unusable, ``problem`` says why."""

    user_id: str
    version: str
    key: ec.EllipticCurvePublicKey | None
    status: str = "ok"  # ok | key_binding_invalid | unusable | conflict
    problem: str = ""
    encoded: str = ""
    identity: str | None = None  # the row's identity public key as given (``public_key``), if any


@dataclass
class Keyring:
    """Authoritative (user_id, key version) -> signing key map, with bindings checked on load.

    Several rows may name one (user, version): rows whose identity binding fails are dropped, as the
    SDK drops them; the rest must all hold one key, else the slot is a conflict. The result never
    depends on the order of the rows.
    """

    keys: dict[tuple[str, str], TrustedKey] = field(default_factory=dict)
    findings: list[tuple[str, str]] = field(default_factory=list)  # (code, message) for the report
    errors: list[str] = field(default_factory=list)  # unusable rows of a key-directory answer
    _rows: dict[tuple[str, str], list[TrustedKey]] = field(default_factory=dict, repr=False)
    fallback: set[tuple[str, str]] = field(default_factory=set)  # slots added by add_fallback
    _entries: list[KeyringEntry] = field(default_factory=list, repr=False)  # the usable rows, as added
    _slots: dict[tuple[str, str], _Slot] = field(default_factory=dict, repr=False)  # what resolves each

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its rows and rebuilt (key objects do not pickle): how ``verifier.archive``
        ships one keyring to every worker. Slots resolve independently of row order."""
        return (_rebuild_keyring, (list(self._entries), list(self.findings), list(self.errors), set(self.fallback)))

    def rows(self) -> dict[tuple[str, str], list[TrustedKey]]:
        """Every usable row by (user, version), before slots are resolved (for the ledger)."""
        return self._rows

    @classmethod
    def from_entries(cls, entries: Iterable[KeyringEntry]) -> "Keyring":
        """Raises ``KeyringError`` (a ``ValueError``) naming the first entry that cannot be used: its
        fields are checked and normalised as ``from_json`` does (``entry_from_row``: an int version
        becomes its text, None or a bool is refused; review 51), then its signing key."""
        ring = cls()
        for number, given in enumerate(entries, 1):
            entry = _normalised(given, number)
            problem = ring.add(entry)
            if problem:
                raise KeyringError(f"entry {number} (user {_label(entry.user_id)} version "
                                   f"{_label(entry.public_key_version)}): {problem}")
        return ring

    def add(self, entry: KeyringEntry) -> str:
        """Add one row; returns why its signing key is unusable ("" when it was added)."""
        trusted = _check_entry(entry)
        if trusted.status == "unusable":
            return trusted.problem
        slot = (entry.user_id, version_key(entry.public_key_version))
        self._rows.setdefault(slot, []).append(trusted)
        resolver = self._slots.get(slot)
        if resolver is None:
            resolver = self._slots[slot] = _Slot()
        resolver.add(trusted)
        self.keys[slot] = resolver.resolve(entry.user_id, entry.public_key_version)
        self._entries.append(entry)
        return ""

    def add_fallback(self, entries: Iterable[KeyringEntry]) -> set[tuple[str, str]]:
        """Add keys only for (user, version) slots the keyring has no row for (e.g. keys a ledger
        kept after the directory stopped serving them); returns the slots added. Unusable entries are
        skipped."""
        added: set[tuple[str, str]] = set()
        for number, given in enumerate(entries, 1):
            try:  # checked and normalised as from_entries does (round 88: an int version, a dict entry)
                entry = _normalised(given, number)
            except KeyringError:
                continue
            slot = (entry.user_id, version_key(entry.public_key_version))
            if slot in self._rows and slot not in added:
                continue
            if not self.add(entry):
                added.add(slot)
        self.fallback |= added
        return added

    def run_findings(self) -> list[tuple[str, str]]:
        """The keyring's (code, message) findings for the report: what loading it found, then every
        key version spelled two ways with two keys."""
        return self.findings + self._version_aliases()

    def _version_aliases(self) -> list[tuple[str, str]]:
        """Round 73: versions match exactly, as in the SDK, so a directory serving user B's version
        ``01`` (or ``+1``) with a key of its own beside version 1 (or, in a ledger's later audit,
        instead of it) got events signed under ``01`` verified, and nothing said that one version
        held two keys. One number, two keys is ``key_conflict``, whatever the spellings."""
        by_number: dict[tuple[str, int], list[TrustedKey]] = {}
        for (user, version), trusted in self.keys.items():
            number = version_number(version)
            if number is not None and trusted.key is not None:
                by_number.setdefault((user, number), []).append(trusted)
        out: list[tuple[str, str]] = []
        for (user, number), slots in sorted(by_number.items()):
            if len({key_identity(t.key) for t in slots if t.key is not None}) > 1:
                spellings = ", ".join(sorted(repr(t.version) for t in slots))
                out.append((Code.KEY_CONFLICT, f"user {user} has key versions {spellings}, all version {number}, "
                                               "with different keys: one key version must hold one key"))
        return out

    def lookup(self, user_id: str | None, version: str | None) -> TrustedKey | None:
        return self.keys.get((user_id or "", version_key(version)))

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def from_public_key_bodies(cls, bodies: Mapping[str, Any]) -> "Keyring":
        """``{user_id: body of GET /2/users/{id}/public_keys}`` (raw bytes or text, as
        ``FetchedBody.body``, or parsed). A body can only give keys of the user it was fetched for: a
        row naming another user is a finding and is ignored. An unusable row, or a body that is not
        a ``{"data": [...]}`` object, is an error of the run (``errors``); the other rows still
        count. Never raises (review 51: raw and error bodies were silently keyless)."""
        ring = cls()
        if not isinstance(bodies, Mapping):
            ring.errors.append(f"public key bodies: expected {{user_id: body}}, got {type(bodies).__name__}")
            return ring
        for user_id in sorted(bodies, key=str):
            rows = _key_body_rows(bodies[user_id])
            if isinstance(rows, str):
                ring.errors.append(f"keys of user {_label(user_id)}: {rows}")
                continue
            if not isinstance(user_id, str):
                ring.errors.append(f"keys of user {_label(user_id)}: the user id is not a string")
                continue
            ring._add_rows(user_id, rows)
        return ring

    def _add_rows(self, user_id: str, rows: list[Any]) -> None:
        """The rows of one user's public_keys body (``from_public_key_bodies``)."""
        for number, row in enumerate(rows, 1):
            named = row.get("user_id") if isinstance(row, dict) else None
            if named is not None and named != user_id:
                self.findings.append(("key_row_foreign_user",
                                      f"the public keys of user {_label(user_id)} include a row for user "
                                      f"{_label(named, quoted=True)}; ignored"))
                continue
            try:
                entry = entry_from_row(row, user_id)
            except ValueError as exc:
                self.errors.append(f"keys of user {user_id}, row {number}: {exc}")
                continue
            problem = self.add(entry)
            if problem:
                self.errors.append(f"keys of user {user_id}, row {number} (version "
                                   f"{entry.public_key_version}): {problem}")

    @classmethod
    def from_json(cls, data: bytes | str | Any) -> "Keyring":
        """Load any documented keyring shape; raises ``ValueError`` with a one-line reason naming the
        entry that cannot be used."""
        if isinstance(data, (bytes, str)):
            if not data.strip():  # r117: an empty file was "not JSON: Input data was truncated"
                raise KeyringError("keyring is empty: no JSON in it (a keyring file holds the keys, as "
                                   "`xchat-verify keys fetch USER_ID... -o keyring.json` writes them)")
            try:
                data = msgspec.json.decode(data)
            except (msgspec.DecodeError, RecursionError) as exc:
                raise KeyringError(f"keyring is not JSON: {exc}") from None
            except UnicodeEncodeError as exc:  # text with a lone surrogate (round 88: raised raw)
                raise KeyringError(f"keyring is not JSON: text that is not valid Unicode ({exc.reason} at "
                                   f"position {exc.start})") from None
        return cls.from_entries(_entries_from_json(data))


def _rebuild_keyring(entries: list[KeyringEntry], findings: list[tuple[str, str]], errors: list[str],
                     fallback: set[tuple[str, str]]) -> Keyring:
    ring = Keyring(findings=findings, errors=errors, fallback=fallback)
    for entry in entries:
        ring.add(entry)
    return ring


@dataclass
class _Slot:
    """One (user, version): the key every row with a good binding agrees on (the least ``encoded``
    of them, the first of a tie), else why not (a conflict, or the least (problem, encoded) of rows
    that all failed their binding). Kept as its rows are added: resolved again from all of them at
    every row, N rows of one slot (a keyring file of 4,000 copies of one row, 1.9 MB) took N * N key
    comparisons, 35 s (round 104)."""

    good: TrustedKey | None = None  # the first good row of the least ``encoded``
    identities: set[bytes] = field(default_factory=set)  # the keys of the good rows
    failed: TrustedKey | None = None  # the first of the least (problem, encoded) of the others

    def add(self, row: TrustedKey) -> None:
        if row.status == "ok":
            if self.good is None or row.encoded < self.good.encoded:
                self.good = row
            if row.key is not None:
                self.identities.add(key_identity(row.key))
        elif self.failed is None or (row.problem, row.encoded) < (self.failed.problem, self.failed.encoded):
            self.failed = row

    def resolve(self, user_id: str, version: str) -> TrustedKey:
        if self.good is not None:
            if len(self.identities) == 1:
                return self.good
            return TrustedKey(user_id, version, None, "conflict", f"keyring holds {len(self.identities)} different "
                                                                   f"keys for user {user_id} version {version}")
        assert self.failed is not None
        return self.failed


def _check_entry(entry: KeyringEntry) -> TrustedKey:
    trusted = TrustedKey(entry.user_id, entry.public_key_version, None, encoded=entry.signing_public_key,
                         identity=entry.public_key)
    try:
        trusted.key = parse_public_key(entry.signing_public_key)
    except UnusableKey as exc:
        trusted.status, trusted.problem = "unusable", f"keyring signing key unusable: {exc}"
        return trusted
    if entry.identity_public_key_signature is not None:
        if entry.public_key is None:
            ok, why = False, "binding signature given without the identity key"
        else:
            ok, why = verify_binding(entry.public_key, trusted.key, entry.identity_public_key_signature)
        if not ok:
            trusted.status = "key_binding_invalid"
            trusted.problem = f"identity binding for user {entry.user_id} version " \
                              f"{entry.public_key_version} does not verify: {why}"
    return trusted


def _json_kind(value: object) -> str:
    """What a JSON value is, in words (for a member of the wrong type)."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def _label(value: object, quoted: bool = False) -> str:
    """A bounded, printable label for a user id given by the caller (``quoted``: as its repr)."""
    text = printable(value if isinstance(value, str) and not quoted else _bounded_repr(value))
    return text if len(text) <= 40 else text[:40] + "…"


def _bounded_repr(value: object) -> str:
    """``repr`` of a value a key row gave, its first 200 characters (a value nested too deep for
    ``repr`` is named by its type: round 88, a row's ``user_id`` of 980 nested lists)."""
    if isinstance(value, str):
        return repr(value[:200])
    try:
        return reprlib.repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deeply>"


def _key_body_rows(body: Any) -> list[Any] | str:
    """The ``data`` rows of a public_keys body, or why there are none to use. Raw bodies are read
    within the client's bounds (``RetryPolicy``: size, JSON values), as a fetched body would be."""
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        try:
            raw = body.encode() if isinstance(body, str) else bytes(body)
        except UnicodeEncodeError as exc:  # a lone surrogate (round 88: "never raises" raised)
            return f"body is not JSON: text that is not valid Unicode ({exc.reason} at position {exc.start})"
        policy = RetryPolicy()
        if len(raw) > policy.max_body_bytes or json_value_bound(raw) > policy.max_json_values:
            return (f"body larger than {policy.max_body_bytes} bytes or {policy.max_json_values} "
                    "JSON values")
        try:
            body = msgspec.json.decode(raw)
        except (msgspec.DecodeError, RecursionError) as exc:
            return f"body is not JSON: {printable(str(exc))}"
    if not isinstance(body, dict):
        return f"body is not a JSON object but {type(body).__name__}"
    rows, errors = body.get("data"), body.get("errors")
    if rows is None and errors:
        first = errors[0] if isinstance(errors, list) else errors
        return f"the API answered with an error instead of keys: {problem_summary(first)}"
    if not isinstance(rows, list):
        return f"body has no `data` array of key rows (`data` is {type(rows).__name__})"
    return rows


def _normalised(entry: Any, number: int) -> KeyringEntry:
    """``from_entries``' entry with ``from_json``'s checks (``entry_from_row``), or ``KeyringError``."""
    if not isinstance(entry, KeyringEntry):
        raise KeyringError(f"entry {number} is not a KeyringEntry but {type(entry).__name__}")
    try:
        return entry_from_row(msgspec.structs.asdict(entry), None)
    except KeyringError as exc:
        raise KeyringError(f"entry {number}: {exc}") from None


def entry_from_row(row: Any, user_id: str | None) -> KeyringEntry:
    """A keyring entry from a key row (either API spelling); ``ValueError`` names what is missing."""
    if not isinstance(row, dict):
        raise KeyringError(f"keyring entry is not an object: {_bounded_repr(row)[:60]}")
    uid = row.get("user_id", user_id)
    version = row.get("public_key_version", row.get("version"))
    signing = row.get("signing_public_key")
    if isinstance(version, int) and not isinstance(version, bool):
        try:
            version = str(version)
        except ValueError:  # more digits than Python writes (round 88: a raw ValueError from from_json)
            raise KeyringError("keyring entry's public_key_version is an integer too large to be a version") from None
    for name, value in (("user_id", uid), ("public_key_version", version),
                        ("signing_public_key", signing)):
        if not isinstance(value, str):
            raise KeyringError(f"keyring entry lacks a string {name}")
    for name in ("public_key", "identity_public_key_signature"):
        if row.get(name) is not None and not isinstance(row[name], str):
            raise KeyringError(f"keyring entry field {name} is not a string")
    assert isinstance(uid, str) and isinstance(version, str) and isinstance(signing, str)  # checked above
    return KeyringEntry(uid, version, signing, row.get("public_key"),
                        row.get("identity_public_key_signature"))


def _looks_like_events_page(data: dict[str, Any]) -> bool:
    """An X API events page (``data`` items carrying ``encoded_event``, or ``meta``), given where a
    keyring belongs: a mistake worth naming."""
    items = data.get("data")
    if not isinstance(items, list):  # (a map of public_keys bodies may name a user "data": an object)
        return False
    return isinstance(data.get("meta"), dict) or any(isinstance(i, dict) and "encoded_event" in i for i in items[:5])


def _single_body_problem(data: dict[str, Any]) -> str:
    """Why one X API response body (``{"data": [...]}`` or an error body) is not a keyring: the
    map form names each body's user, which a per-user public_keys body does not."""
    rows = data.get("data")
    if not isinstance(rows, list):
        first = data["errors"][0] if data["errors"] else {}
        return (f"this is an API error response, not a keyring: {problem_summary(first)}" if isinstance(first, dict)
                else "this is an API error response, not a keyring")
    if rows and all(isinstance(r, dict) and isinstance(r.get("user_id"), str) for r in rows):
        return ('this is one public_keys response body ({"data": [...]}): give its rows as {"keys": [...]} '
                "(docs/formats.md), or fetch a keyring with `xchat-verify keys fetch USER_ID... -o keyring.json`")
    return ('this is one GET /2/users/{id}/public_keys response body ({"data": [...]}), which does not name its '
            'user: give it as {"USER_ID": body} (docs/formats.md), or fetch a keyring with '
            "`xchat-verify keys fetch USER_ID... -o keyring.json`")


def _entries_from_json(data: Any) -> list[KeyringEntry]:
    if isinstance(data, list):
        return [entry_from_row(r, None) for r in data]
    if not isinstance(data, dict):
        raise KeyringError("keyring must be an object or a list")
    if _looks_like_events_page(data):  # review 61: "entry for user data is not a public_keys body"
        raise KeyringError("this is an events page, not a keyring: give the keys of its signers (`xchat-verify "
                           "keys fetch USER_ID... -o keyring.json`, or an evidence directory's keys/ responses)")
    if isinstance(data.get("data"), list) or (isinstance(data.get("errors"), list) and "data" not in data):
        raise KeyringError(_single_body_problem(data))  # round 80: "entry for user data is not a ... body"
    if "keys" in data and isinstance(data["keys"], list):
        others = [str(name) for name in data if name != "keys"]
        if others:  # two shapes in one file: which one the author meant is not ours to guess
            shown = ", ".join(repr(name if len(name) <= 40 else name[:40] + "…") for name in others[:3])
            raise KeyringError(f"keyring has members besides \"keys\" ({shown}{', …' if len(others) > 3 else ''}): "
                               "use one shape (docs/formats.md)")
        return [entry_from_row(r, None) for r in data["keys"]]
    if "keys" in data:  # r126: read as the public_keys body of a user "keys": no key and no word of it
        raise KeyringError(f'keyring "keys" is {_json_kind(data["keys"])}, not a list of key rows '
                           '({"keys": [{"user_id": ..., "public_key_version": ..., "signing_public_key": ...}]}; '
                           "docs/formats.md)")
    entries = []
    for user_id, body in data.items():
        if not isinstance(body, dict):
            raise KeyringError(f"keyring entry for user {_label(user_id)} is {_json_kind(body)}, not a public_keys "
                               'response body ({"USER": {"data": [key rows]}}, or {"keys": [rows with user_id]}; '
                               "docs/formats.md)")
        rows = body.get("data") or []
        if not isinstance(rows, list):  # (a user id is the file's text: bounded, as elsewhere; round 80)
            raise KeyringError(f"public_keys body for user {_label(user_id)} has no data array")
        for row in rows:
            named = row.get("user_id") if isinstance(row, dict) else None
            if named is not None and named != user_id:
                raise KeyringError(f"the public keys of user {_label(user_id)} include a row for user "
                                   f"{_label(named, quoted=True)}")
            entries.append(entry_from_row(row, str(user_id)))
    return entries
