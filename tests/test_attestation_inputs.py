"""What the attestation commands read and write (review 62): a --public-key value is the key even
where a file of that name holds another; two checkpoints signed by one key are not two views; a
checkpoint naming a field twice is refused; no output replaces a file the same command reads."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from verifier.cli import main

REPO = Path(__file__).resolve().parents[1]
CONV = "1215441834412953600:1843439638876491776"


def test_a_public_key_value_is_the_key_even_where_a_file_of_that_name_holds_another(tmp_path, monkeypatch):
    from nacl.signing import SigningKey

    from verifier.receipts import load_verify_key
    trusted, forger = SigningKey.generate(), SigningKey.generate()
    value = base64.b64encode(bytes(trusted.verify_key)).decode()
    planted = tmp_path / value  # a base64 key without "/" is a file name; with "/" a directory and a file
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_text(json.dumps({"public_key": base64.b64encode(bytes(forger.verify_key)).decode()}))
    monkeypatch.chdir(tmp_path)
    assert os.path.exists(value)
    assert bytes(load_verify_key(value)) == bytes(trusted.verify_key)


def test_the_private_receipt_key_is_not_taken_as_the_public_key(tmp_path):
    """Round 67/80: the private key file given where the public key is asked for was taken silently
    (it holds the public key too), inviting the auditor to hand the private key to whoever checks."""
    from verifier.receipts import ReceiptError, load_verify_key
    key = tmp_path / "receipt.key"
    assert main(["keys", "new-receipt-key", "-o", str(key)]) == 0
    assert load_verify_key(f"{key}.pub") is not None
    with pytest.raises(ReceiptError, match="is the PRIVATE receipt key"):
        load_verify_key(str(key))


@pytest.fixture()
def ledgers(tmp_path, capsys):
    """Two ledgers of the example conversation, and a signed checkpoint of each under its own key."""
    pages = sorted(str(p) for p in (REPO / "examples" / "conversation").glob("*.json"))
    out = {}
    for name in ("a", "b"):
        ledger, key = tmp_path / f"{name}.db", tmp_path / f"{name}.key"
        assert main(["verify", *pages, "--keys", str(REPO / "examples" / "keyring.json"), "--ledger", str(ledger),
                     "--format", "json", "-o", str(tmp_path / f"{name}.json")]) == 0
        assert main(["keys", "new-receipt-key", "-o", str(key)]) == 0
        assert main(["ledger", "checkpoint", CONV, "--ledger", str(ledger), "--key", str(key),
                     "-o", str(tmp_path / f"{name}.cp.json")]) == 0
        out[name] = (ledger, key)
    capsys.readouterr()
    return out


def test_two_checkpoints_signed_by_one_key_are_not_two_views(ledgers, tmp_path, capsys):
    keys = ["--public-key", str(ledgers["a"][1]) + ".pub", "--public-key", str(ledgers["b"][1]) + ".pub"]
    assert main(["ledger", "compare", str(tmp_path / "a.cp.json"), str(tmp_path / "b.cp.json"), *keys]) == 0
    shutil.copy(tmp_path / "b.cp.json", tmp_path / "from-a.json")  # b's own view, relayed back as a's
    capsys.readouterr()
    assert main(["ledger", "compare", str(tmp_path / "from-a.json"), str(tmp_path / "b.cp.json"), *keys]) == 3
    assert "signed by one key" in capsys.readouterr().err


def test_a_checkpoint_naming_a_field_twice_is_refused(ledgers, tmp_path, capsys):
    text = (tmp_path / "a.cp.json").read_text()
    doubled = text.replace('"root"', '"root": "' + "0" * 64 + '", "root"', 1)
    (tmp_path / "twice.json").write_text(doubled)
    assert main(["ledger", "compare", str(tmp_path / "twice.json"), str(tmp_path / "b.cp.json")]) == 3
    assert "names root twice" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    lambda t, led: ["ledger", "export", "--ledger", str(led["a"][0]), "-o", str(led["a"][0])],
    lambda t, led: ["ledger", "checkpoint", CONV, "--ledger", str(led["a"][0]), "--key", str(led["a"][1]),
                  "-o", str(led["a"][1])],
    lambda t, led: ["verify", str(t / "page.json"), "--keys", str(t / "ring.json"), "-o", str(t / "ring.json")],
    lambda t, led: ["verify", str(t / "page.json"), "--keys", str(t / "ring.json"), "-o", str(t / "page.json")],
])
def test_no_output_replaces_a_file_the_command_reads(ledgers, tmp_path, capsys, command):
    shutil.copy(REPO / "examples" / "conversation" / "page-1.json", tmp_path / "page.json")
    shutil.copy(REPO / "examples" / "keyring.json", tmp_path / "ring.json")
    args = command(tmp_path, ledgers)
    target = Path(args[-1])
    before = target.read_bytes()
    assert main(args) == 2
    assert "file this command reads: writing there would replace it" in capsys.readouterr().err
    assert target.read_bytes() == before


def test_receipt_verify_reads_a_huge_manifest_bounded(tmp_path):
    """Review 62: `receipt verify --evidence DIR` hashed DIR/manifest.json whole (a 4 GiB sparse file
    took seconds, 1 TiB would take hours); it is read as `verify DIR` reads it, bounded."""
    from nacl.signing import SigningKey

    from verifier.receipts import RECEIPT_SCHEMA, canonical, verify_receipt
    key = SigningKey.generate()
    evidence = tmp_path / "ev"
    evidence.mkdir()
    with open(evidence / "manifest.json", "wb") as handle:
        handle.truncate(300 * 1024 * 1024)  # sparse: no disk, past the 256 MB bound
    receipt = {"schema": RECEIPT_SCHEMA, "tool_version": "x", "time": "2026-12-03T00:00:00Z", "verdict": "pass",
               "report_digest": "0" * 64, "evidence_manifest_digest": "0" * 64, "evidence_report_digest": "0" * 64,
               "checkpoints": [], "ledger_audit": None, "public_key": base64.b64encode(bytes(key.verify_key)).decode()}
    receipt["signature"] = base64.b64encode(key.sign(canonical(receipt)).signature).decode()
    problems = verify_receipt(receipt, key.verify_key, str(evidence))
    assert any("the evidence manifest cannot be read" in p and "larger than" in p for p in problems), problems


def test_the_ledger_of_the_environment_and_the_xfail_list_are_inputs_too(ledgers, tmp_path, capsys, monkeypatch):
    """Review 64: the guard read --ledger only, not XCHAT_VERIFY_LEDGER (the ledger then opened),
    and not vectors --xfail."""
    ledger = ledgers["a"][0]
    before = ledger.read_bytes()
    monkeypatch.setenv("XCHAT_VERIFY_LEDGER", str(ledger))
    assert main(["ledger", "export", "-o", str(ledger)]) == 2
    assert "is the --ledger file this command reads" in capsys.readouterr().err and ledger.read_bytes() == before
    monkeypatch.delenv("XCHAT_VERIFY_LEDGER")
    xfail = tmp_path / "xfail.txt"
    xfail.write_text("chain/gap\n")
    assert main(["vectors", str(REPO / "vectors"), "--xfail", str(xfail), "-o", str(xfail)]) == 2
    assert "is the --xfail file this command reads" in capsys.readouterr().err
    assert xfail.read_text() == "chain/gap\n"


def test_new_receipt_key_refuses_standard_output(tmp_path, monkeypatch, capsys):
    """Round 100: `keys new-receipt-key -o -` wrote the private key to a file named `-` (and `-.pub`)
    in the working directory, exit 0, though `-o -` is standard output everywhere else."""
    monkeypatch.chdir(tmp_path)
    assert main(["keys", "new-receipt-key", "-o", "-"]) == 2
    err = capsys.readouterr().err
    assert "never to standard output" in err and len(err.strip().splitlines()) == 1
    assert os.listdir(tmp_path) == []


def test_compare_names_the_ledger_that_lacks_the_conversation_asked_for(ledgers, tmp_path, capsys):
    """Round 100 (new-user walk): `ledger compare A B --conversation C` for a C one ledger (or neither)
    holds said "the two ledgers have no conversation in common", though they shared others."""
    (a, _), (b, _) = ledgers["a"], ledgers["b"]
    assert main(["ledger", "compare", str(a), str(b), "--conversation", "1:2"]) == 3
    out, err = capsys.readouterr()
    assert json.loads(out)["notes"] == ["conversation 1:2 is in neither ledger"] and "in neither ledger" in err
    assert main(["ledger", "compare", str(a), str(b), "--conversation", CONV]) == 0
    capsys.readouterr()
