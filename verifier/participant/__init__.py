"""The participant audit (docs/participant.md): what a participant can prove with their own key.

* ``identity``: the SDK's private key blob from a file (``--identity-key``), never shown;
* ``crypto``: ECIES for conversation keys (``cryptography``), the secretbox for contents (PyNaCl);
* ``content``: decrypted contents (product.thrift ``MessageEntryHolder``), read by the bounded reader;
* ``review``: the ``Participant`` reviewer: keys before signatures, content checks after;
* ``transcript``: the decrypted conversation with each message's proof (jsonl, html, markdown).

It uses the verification core (wire, payload, keys, engine, semantics, model) and nothing of the
network or the command line.
"""

from __future__ import annotations

from .content import Content, decode_content
from .identity import ENV_VAR, IdentityKey, LoadedKey, load_identity_key
from .review import Opened, Participant, participant_reviewers

__all__ = ["ENV_VAR", "IdentityKey", "LoadedKey", "load_identity_key", "Content", "decode_content",
           "Participant", "Opened", "participant_reviewers"]
