"""The two decryptions of X Chat (docs/protocol.md §5), from libraries only: no hand-written primitive.

* Conversation keys: ECIES to the participant's identity key. The blob is the sender's ephemeral
  P-256 key (SEC1 uncompressed, 65 bytes) ‖ AES-128-GCM ciphertext ‖ tag (16 bytes). The shared
  secret (ECDH x-coordinate) goes through the ANSI X9.63 KDF with SHA-256 and the ephemeral key as
  shared info; of its 32 bytes the first 16 are the AES key and the last 16 the GCM nonce (a 16-byte
  nonce), no associated data. ``cryptography``: ECDH, ``X963KDF``, ``AESGCM``.
* Message contents: XSalsa20-Poly1305 secretbox under the 32-byte conversation key, laid out as
  nonce (24) ‖ tag (16) ‖ ciphertext. PyNaCl's ``SecretBox`` (libsodium).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

EPHEMERAL_BYTES = 65
TAG_BYTES = 16
NONCE_BYTES = 24


def ecies_decrypt(private: ec.EllipticCurvePrivateKey, blob: bytes) -> bytes:
    """Open an ECIES blob addressed to ``private``; ``ValueError`` (never the key) when it does not."""
    if len(blob) < EPHEMERAL_BYTES + TAG_BYTES:
        raise ValueError(f"ECIES blob of {len(blob)} bytes is too short")
    ephemeral_bytes = bytes(blob[:EPHEMERAL_BYTES])
    if ephemeral_bytes[0] != 4:
        raise ValueError("ECIES ephemeral key is not an uncompressed P-256 point")
    try:
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ephemeral_bytes)
    except ValueError:
        raise ValueError("ECIES ephemeral key is not a P-256 point") from None
    shared = private.exchange(ec.ECDH(), ephemeral)
    okm = X963KDF(algorithm=hashes.SHA256(), length=32, sharedinfo=ephemeral_bytes).derive(shared)
    try:
        return AESGCM(okm[:16]).decrypt(okm[16:32], bytes(blob[EPHEMERAL_BYTES:]), None)
    except InvalidTag:
        raise ValueError("ECIES authentication failed (not encrypted to this identity key, or altered)") from None


def secretbox_open(key: bytes, contents: bytes) -> bytes:
    """Open message contents (nonce ‖ tag ‖ ciphertext); ``ValueError`` when they do not authenticate."""
    if len(key) != 32:
        raise ValueError("a conversation key is 32 bytes")
    if len(contents) < NONCE_BYTES + TAG_BYTES:
        raise ValueError(f"contents of {len(contents)} bytes are shorter than nonce and tag")
    try:
        return SecretBox(key).decrypt(bytes(contents[NONCE_BYTES:]), bytes(contents[:NONCE_BYTES]))
    except CryptoError:
        raise ValueError("contents fail authentication under the conversation key") from None
