"""One event's signature, in the official SDK's steps and order, so every event gets the SDK's
verdict (docs/protocol.md §4):

1. the kind must be signed (else ``not_signed``; a signed kind with nothing signed fails);
2. a signature must be present;
3. its version must be at least 2 (missing or unparseable: 7);
4. the signer's key is chosen (``signers.select_key``);
5. the signed payload is rebuilt (``payload.build_payload``);
6. ECDSA is checked — later, in bulk, on threads (``Job``).
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec

from .keys import Keyring, decode_signature, raw_signatures_to_der, verify_der, verify_raw
from .model import Check, Code, SigStatus
from .payload import (
    CKEY_PLAINTEXT_SIGNATURE_VERSION,
    MIN_SIGNATURE_VERSION,
    UNSIGNED_KINDS,
    PayloadUnavailable,
    build_payload,
    must_be_signed,
    parse_signature_version,
)
from .signers import Note, select_key
from .wire import MessageEvent


class Job(msgspec.Struct, gc=False):
    """Step 6, deferred: check ``signature`` over ``payload`` with ``key``. A ``msgspec.Struct``:
    one is made per event, in C (a ``NamedTuple`` ran a Python ``__new__``); it holds no cycle."""

    key: ec.EllipticCurvePublicKey
    signature: bytes
    payload: bytes
    detail: str
    fail_note: str = ""  # added to the detail when the check fails


def prepare(event: MessageEvent, keyring: Keyring | None, allow_embedded: bool,
            conversation_keys: Mapping[str, bytes], note: Note) -> Check | Job:
    """Steps 1 to 5: the final ``Check`` when one of them decides, else the ECDSA ``Job``."""
    # 1. A kind that must be signed.
    kind = event.kind
    if not must_be_signed(kind):
        return unsigned(kind, note)
    if kind == "MessageCreateEvent":
        body = event.body or {}
        if body.get("contents") is None:
            # The SDK returns such an event as "Unknown" without checking anything; a signed kind
            # must not pass as unsigned, so it fails here.
            return Check(SigStatus.UNVERIFIABLE, "MessageCreateEvent without contents: nothing signed can be "
                                                 "checked (the SDK shows it as an unknown, unverified event)")
        if body.get("conversation_key_version") is None:
            # Found by the structural fuzzer: the SDK decides this before looking at the signature
            # version, so a downgraded version does not change the verdict.
            return Check(SigStatus.UNVERIFIABLE, "unencrypted message (no conversation_key_version): never signed")
    # 2. A signature.
    sig = event.signature
    if sig is None or sig.signature is None:
        return Check(SigStatus.MISSING_SIGNATURE, f"{kind} must be signed but has no signature")
    # 3. A version of at least 2.
    version, version_note = parse_signature_version(sig.signature_version)
    if version < MIN_SIGNATURE_VERSION:
        return Check(SigStatus.UNSUPPORTED_VERSION,
                     f"signature_version {version} is no longer accepted (minimum: {MIN_SIGNATURE_VERSION})")
    # 4. The signer's key.
    key = select_key(event, keyring, allow_embedded, note)
    if isinstance(key, Check):
        return key
    # 5. The payload.
    try:
        payload = build_payload(event, version, conversation_keys)
    except PayloadUnavailable as exc:
        return Check(exc.status, exc.reason)
    detail = f"v{version}{f' ({version_note})' if version_note else ''}, key {event.sender_id}/" \
        f"{sig.public_key_version or ''}"  # (one f-string: an event's; no concatenations)
    fail_note = ""
    if kind == "ConversationKeyChangeEvent" and version >= CKEY_PLAINTEXT_SIGNATURE_VERSION:
        # round 100: a mistyped --conversation-key read only as "ECDSA mismatch", whose hint says the
        # event was altered; the payload holds the key given, so a wrong one fails the same way
        fail_note = (f"; the signed payload holds the conversation key used for version "
                     f"{(event.body or {}).get('conversation_key_version')} (--conversation-key, or opened with "
                     "--identity-key): a wrong key fails so too")
    return Job(key, decode_signature(sig.signature), payload, detail, fail_note)


def unsigned(kind: str | None, note: Note) -> Check:
    if kind in UNSIGNED_KINDS:
        return Check(SigStatus.NOT_SIGNED, f"{kind} is not signed by the protocol")
    what = "event has no detail" if kind is None else f"unknown event kind {kind}"
    note(Code.UNKNOWN_EVENT_TYPE, what)
    return Check(SigStatus.NOT_SIGNED, what)


def check(job: Job) -> Check:
    """Step 6: ECDSA P-256/SHA-256 over the payload, raw r||s, high S accepted."""
    ok, why = verify_raw(job.key, job.signature, job.payload)
    return Check(_VALID, job.detail) if ok else _invalid(why, job)


def check_all(jobs: list[Job]) -> list[Check | None]:
    """``check`` of each job, None where it is valid (``Check(VALID, job.detail)``): a run checks
    thousands of signatures by one signer, and codes the valid ones by their detail alone. The
    signatures are converted to DER together (``raw_signatures_to_der``), those it leaves by
    ``verify_raw``."""
    ders = raw_signatures_to_der(list(map(_SIGNATURE_OF, jobs)))
    return [None if (outcome := verify_der(job.key, der, job.payload) if der is not None
                     else verify_raw(job.key, job.signature, job.payload))[0] else _invalid(outcome[1], job)
            for job, der in zip(jobs, ders)]


_SIGNATURE_OF = attrgetter("signature")


def _invalid(why: str, job: Job) -> Check:
    return Check(SigStatus.INVALID, f"{why}; {job.detail}{job.fail_note}")


# An enum member read from its class costs a call of the metaclass's attribute hook (about ten
# times a global's cost on CPython 3.11): the members every event reads are read once, here.
_VALID = SigStatus.VALID
