"""The participant's own private key: read from a file, checked, used, never shown.

The SDK's private key blob (``Chat.export_keys``) is the identity scalar (32 bytes, big-endian),
optionally followed by the signing scalar (32 bytes): ``identity_d ‖ signing_d``. xchat-verify reads
it as standard base64 text from a file named by ``--identity-key FILE`` or by the environment
variable ``XCHAT_VERIFY_IDENTITY_KEY_FILE``; never from a command-line argument, whose value other
users of the machine can read in the process list.

The scalars become ``cryptography`` private key objects at once and the text and bytes read are
overwritten. Nothing here ever puts key material in a message, a ``repr`` or an exception: errors
name the file and the reason only.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import IdentityKeyError, MalformedEvent
from ..keys import P256_ORDER, Keyring, UnusableKey, key_identity, parse_public_key
from ..settings import IDENTITY_KEY_ENV
from ..wire import b64decode_strict
from .crypto import ecies_decrypt

ENV_VAR = IDENTITY_KEY_ENV  # the variable naming the key file when --identity-key is not given
_MAX_FILE_BYTES = 4096  # a blob is 44 or 88 base64 characters; anything far larger is not one
_WHITESPACE = b" \t\r\n"


class IdentityKey:
    """A participant's identity key (and, if the blob had one, signing key). Opaque: ``repr`` and
    ``str`` show only the public key's fingerprint, and it cannot be pickled or copied out."""

    __slots__ = ("_identity", "_signing", "source")

    def __init__(self, identity: ec.EllipticCurvePrivateKey, signing: ec.EllipticCurvePrivateKey | None,
                 source: str = "identity key") -> None:
        self._identity = identity
        self._signing = signing
        self.source = source

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_blob(cls, blob: bytes | bytearray, source: str = "identity key") -> "IdentityKey":
        """32 bytes (identity scalar) or 64 (identity ‖ signing scalar); ``IdentityKeyError`` otherwise."""
        if len(blob) not in (32, 64):
            raise IdentityKeyError(f"{source}: a private key blob is 32 or 64 bytes, not {len(blob)}")
        scalars = [int.from_bytes(blob[i:i + 32], "big") for i in range(0, len(blob), 32)]
        if not all(0 < d < P256_ORDER for d in scalars):
            raise IdentityKeyError(f"{source}: not a P-256 private key (scalar out of range)")
        keys = [ec.derive_private_key(d, ec.SECP256R1()) for d in scalars]
        del scalars
        return cls(keys[0], keys[1] if len(keys) > 1 else None, source)

    @classmethod
    def from_text(cls, text: bytes | bytearray | str, source: str = "identity key") -> "IdentityKey":
        """Standard base64 of the blob (padding optional, surrounding whitespace ignored); as bytes,
        or as text (round 88: a key from an environment variable or a secret store, a str, was a
        TypeError)."""
        if isinstance(text, str):
            try:
                text = text.encode("ascii")
            except UnicodeEncodeError:
                raise IdentityKeyError(f"{source}: not base64 text (the SDK's exported key blob is expected)") from None
        stripped = bytes(text).strip(_WHITESPACE)
        try:
            decoded = stripped.decode("ascii")
        except UnicodeDecodeError:
            raise IdentityKeyError(f"{source}: not base64 text (the SDK's exported key blob is expected)") from None
        try:
            blob = bytearray(b64decode_strict(decoded, source))
        except MalformedEvent:
            raise IdentityKeyError(f"{source}: not standard base64 (the SDK's exported key blob is expected)") \
                from None
        finally:
            del decoded, stripped
        try:
            return cls.from_blob(blob, source)
        finally:
            blob[:] = bytes(len(blob))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "IdentityKey":
        """Read a key file; ``IdentityKeyError`` names the file and the reason, never its content."""
        source = f"identity key file {os.fspath(path)}"
        try:
            with open(path, "rb") as handle:
                data = bytearray(handle.read(_MAX_FILE_BYTES + 1))
        except OSError as exc:
            raise IdentityKeyError(f"cannot read {source}: {exc.strerror or type(exc).__name__}") from None
        try:
            if len(data) > _MAX_FILE_BYTES:
                raise IdentityKeyError(f"{source}: larger than {_MAX_FILE_BYTES} bytes, not a key blob")
            return cls.from_text(data, source)
        finally:
            data[:] = bytes(len(data))

    # ------------------------------------------------------------------ use
    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._identity.public_key()

    @property
    def signing_public_key(self) -> ec.EllipticCurvePublicKey | None:
        return self._signing.public_key() if self._signing is not None else None

    def fingerprint(self) -> str:
        """URL-safe base64 (no padding) of SHA-256 of the identity public key's SPKI, as the SDK's
        ``get_public_key_fingerprint`` shows it: safe to print and compare out of band."""
        import base64
        import hashlib
        spki = self.public_key.public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        return base64.urlsafe_b64encode(hashlib.sha256(spki).digest()).decode().rstrip("=")

    def decrypt_conversation_key(self, blob: bytes) -> bytes:
        """ECIES-decrypt a conversation key addressed to this identity key; ``ValueError`` if it
        does not decrypt or is not 32 bytes."""
        key = ecies_decrypt(self._identity, blob)
        if len(key) != 32:
            raise ValueError(f"decrypts to {len(key)} bytes, not a 32-byte conversation key")
        return key

    def owner(self, keyring: Keyring | None) -> tuple[str, str] | None:
        """(user id, key version) of the keyring row whose identity key (or, failing that, signing
        key) is this key's public key; None when no row names it."""
        owners = self.owners(keyring)
        return owners[0] if owners else None

    def owners(self, keyring: Keyring | None) -> list[tuple[str, str]]:
        """Every (user id, key version) whose keyring row's identity key is this key's public key
        (or, when none is, whose signing key is this blob's signing key), in keyring order. More
        than one user is what a hostile directory serves when it copies the participant's row under
        another user id (round 83): each of them is the participant's label."""
        if keyring is None:
            return []
        mine = key_identity(self.public_key)
        signing_key = self.signing_public_key
        signing = key_identity(signing_key) if signing_key is not None else None
        by_identity: list[tuple[str, str]] = []
        by_signing: list[tuple[str, str]] = []
        for (user_id, version), trusted in sorted(keyring.keys.items()):
            if trusted.identity is not None and _same(trusted.identity, mine):
                by_identity.append((user_id, version))
            elif signing is not None and trusted.key is not None and key_identity(trusted.key) == signing:
                by_signing.append((user_id, version))
        return by_identity or by_signing

    def __repr__(self) -> str:
        return f"IdentityKey(fingerprint={self.fingerprint()!r}, private key not shown)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:  # no pickling, no copy.copy: the key stays in this process, in this object
        raise TypeError("an IdentityKey cannot be pickled or copied")


def _same(encoded: str, identity: bytes) -> bool:
    try:
        return key_identity(parse_public_key(encoded)) == identity
    except UnusableKey:
        return False


def _pasted_key_hint(value: str) -> str:
    """When a value meant to name a key file looks like a key blob itself, say so (without it)."""
    text = value.strip()
    if len(text) in (44, 88) and all(c.isalnum() or c in "+/=" for c in text):
        return " (the value looks like a key blob itself: put the key in a file readable only by you and " \
               "name the file)"
    return ""


@dataclass
class LoadedKey:
    """An identity key from ``load_identity_key`` with the warnings to show (file permissions)."""

    key: IdentityKey
    path: str
    warnings: list[str] = field(default_factory=list)


def load_identity_key(path: str | None, environ: Mapping[str, str] | None = None) -> LoadedKey | None:
    """The key from ``path``, else from the file ``XCHAT_VERIFY_IDENTITY_KEY_FILE`` names, else None.

    A file that group or others may read or write gets a warning (the key is still used); a file
    that cannot be read or does not hold a key blob raises ``IdentityKeyError`` (exit 3)."""
    environ = os.environ if environ is None else environ
    named_by = "--identity-key"
    if not path:
        path, named_by = environ.get(ENV_VAR) or None, ENV_VAR
        if path is None:
            return None
    warnings = []
    try:
        mode = Path(path).stat().st_mode
    except (OSError, ValueError) as exc:  # the value is never echoed: it may be the key itself, pasted
        raise IdentityKeyError(f"cannot read the identity key file named by {named_by}: "
                               f"{getattr(exc, 'strerror', None) or type(exc).__name__}{_pasted_key_hint(path)}") \
            from None
    if not stat.S_ISREG(mode):
        raise IdentityKeyError(f"identity key file {path} is not a regular file")
    if os.name == "posix" and mode & 0o077:
        warnings.append(f"identity key file {path} is accessible to group or others (mode "
                        f"{stat.S_IMODE(mode):04o}); restrict it: chmod 600 {path}")
    return LoadedKey(IdentityKey.from_file(path), path, warnings)
