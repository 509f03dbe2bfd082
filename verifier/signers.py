"""Whose key checks a signature: the keyring's key for (sender, key version), matched exactly as the
official SDK matches it, or, only when the caller opts in, the key the event carries; and every key
an event carries, cross-checked against the keyring and against the other events."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec

from .keys import Keyring, UnusableKey, key_identity, parse_public_key, version_key
from .model import Check, Code, SigStatus
from .wire import MessageEvent

Note = Callable[[str, str], None]  # (finding code, message) about the event being checked


def select_key(event: MessageEvent, keyring: Keyring | None, allow_embedded: bool,
               note: Note) -> ec.EllipticCurvePublicKey | Check:
    """The signer's key, or the ``Check`` that says why there is none.

    1. With a keyring, its row for (sender_id, public_key_version) decides: a failed binding or a
       conflict is final. 2. Without a row (or without a keyring), the event's own key is used only
       under ``allow_embedded`` (and noted when a keyring exists)."""
    sig = event.signature
    assert sig is not None  # the caller checked that a signature exists
    sender, version = event.sender_id or "", sig.public_key_version or ""
    if keyring is not None:
        trusted = keyring.keys.get((sender, version))  # ``keyring.lookup``, inline (versions match exactly)
        if trusted is not None:
            if trusted.status == _BINDING_INVALID:
                return Check(SigStatus.KEY_BINDING_INVALID, trusted.problem)
            if trusted.key is None:
                if trusted.status == "conflict":
                    note(Code.KEY_CONFLICT, trusted.problem)
                return Check(SigStatus.UNKNOWN_KEY, trusted.problem)
            return trusted.key
        if not allow_embedded:
            return Check(SigStatus.UNKNOWN_KEY, f"keyring has no key for user {sender} version {version}")
    encoded = embedded_signer_key(event, sender, version)
    if encoded is None:
        where = "the keyring or the event" if keyring is not None else "the event (no keyring given)"
        return Check(SigStatus.UNKNOWN_KEY, f"no signing key for user {sender} version {version} in {where}")
    try:
        key = parse_public_key(encoded)
    except UnusableKey as exc:
        return Check(SigStatus.INVALID, f"embedded signing key unusable: {exc}")
    if keyring is not None:
        note(Code.EMBEDDED_KEY_USED, f"keyring lacks user {sender} version {version}; verified with the "
                                     "event's own key")
    return key


# read once: an enum member read from its class costs a call of the metaclass's attribute hook
_BINDING_INVALID = SigStatus.KEY_BINDING_INVALID


def embedded_keys(event: MessageEvent | None) -> list[tuple[str, str, str]]:
    """(member, key version, encoded key) of every key the event carries."""
    if event is None or event.signature is None:
        return []
    sig = event.signature
    out = [(i.member_id, i.public_key_version or "", i.signing_public_key)
           for i in sig.message_signing_key_info_list or []
           if i.member_id is not None and i.signing_public_key is not None]
    if sig.signing_public_key is not None and event.sender_id is not None:
        out.append((event.sender_id, sig.public_key_version or "", sig.signing_public_key))
    return out


def embedded_signer_key(event: MessageEvent, sender: str, version: str) -> str | None:
    sig = event.signature
    assert sig is not None
    for info in sig.message_signing_key_info_list or ():
        if info.member_id == sender and info.signing_public_key is not None and \
                version_key(info.public_key_version) == version:
            return info.signing_public_key
    return sig.signing_public_key


@lru_cache(maxsize=4096)
def _identity(encoded: str) -> bytes:
    try:
        return key_identity(parse_public_key(encoded))
    except UnusableKey:
        return b"unparseable:" + encoded.encode()


KeySlot = tuple[str, str]  # (member, canonical key version)
Carriers = dict[KeySlot, dict[bytes, "array[int]"]]  # slot -> key identity -> indices of the events carrying it


def key_carriers(events: Iterable[tuple[int, MessageEvent | None]]) -> Carriers:
    """Which events carry which embedded key for each (member, version) slot."""
    carriers: dict[tuple[str, str, str], list[int]] = {}
    for index, event in events:
        for triple in embedded_keys(event):
            carriers.setdefault(triple, []).append(index)
    return slots_of(carriers)


def slots_of(carriers: Mapping[tuple[str, str, str], Iterable[int]]) -> Carriers:
    """``key_carriers`` from {(member, version, encoded key): indices of the events carrying it}
    (the engine gathers it as pages arrive). Indices are kept as arrays of 4 bytes each: a list
    held an int object for each of every event's carried keys (two in a 1:1 history), 73 bytes an
    event at the peak of a long run's tail (73 MB at 1,000,000 events)."""
    by_slot: Carriers = {}
    for (member, version, encoded), indices in carriers.items():
        by_slot.setdefault((member, version_key(version)), {}).setdefault(_identity(encoded), array("I")).extend(indices)
    return by_slot


def carrier_conflicts(by_slot: Carriers, keyring: Keyring | None,
                      shared: Mapping[KeySlot, Collection[bytes]] | None = None) -> list[tuple[int, str]]:
    """(event index, message) for every carrier whose key for a slot differs from the keyring's, or
    (without a keyring row) from another event's. ``shared``: the identities every part of a larger
    run saw per slot (``verifier.archive``), so a part decides as the whole run would."""
    conflicts: set[tuple[int, str, str]] = set()
    for (member, version), identities in by_slot.items():
        trusted = keyring.lookup(member, version) if keyring is not None else None
        seen = len(shared.get((member, version), identities)) if shared is not None else len(identities)
        if trusted is not None and trusted.key is not None:
            reference = key_identity(trusted.key)
            bad = [i for ident, idx in identities.items() if ident != reference for i in idx]
        elif max(seen, len(identities)) > 1:
            bad = [i for idx in identities.values() for i in idx]
        else:
            bad = []
        conflicts.update((i, member, version) for i in bad)
    out = []
    for index, member, version in sorted(conflicts):
        source = "the keyring" if keyring is not None and keyring.lookup(member, version) else "other events"
        out.append((index, f"embedded key for user {member} version {version} differs from {source}"))
    return out


def embedded_key_conflicts(events: Iterable[tuple[int, MessageEvent | None]],
                           keyring: Keyring | None) -> list[tuple[int, str]]:
    """(event index, message) for every event whose embedded key for a (member, version) differs
    from the keyring's, or (without a keyring row) from another event's."""
    return carrier_conflicts(key_carriers(events), keyring)
