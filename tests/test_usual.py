"""The engine's usual-event path (``_Run._decode_entries``) against the general one it short-cuts.

Both must give the same report, byte for byte, on every event: the usual path takes a signed
``MessageCreateEvent`` whose every step is the common one, and must hand anything else, untouched,
to ``_decode`` and ``_prepare``. Each case mutates one thing the usual path tests (the event's
bytes and fields, its JSON envelope, the keyring), and the report with the usual path is compared
with the report without it, for both decoders (the shipped one and pure Python's layouts).
"""

from __future__ import annotations

import base64
import copy
import json
import random

import msgspec
import pytest

import verifier
from verifier import engine, layouts, wire
from verifier.keys import KeyringEntry
from verifier.report import render
from verifier.signature import Job
from verifier.testing.forge import Identity, build_conversation, encode_event, forge_event, item_json
from verifier.wire import decode_event_bytes

FORMATS = ("json", "ndjson", "sarif")
_MEMBERS = [Identity.from_seed("1215441834412953600", "1765382634817", "usual-a"),
            Identity.from_seed("1843439638876491776", "1736723828667", "usual-b")]


@pytest.fixture(scope="module")
def history():
    conv = build_conversation(40, members=_MEMBERS, seed="usual", realistic_crypto=False)
    return conv, conv.pages(10), json.loads(json.dumps(conv.keyring()))


@pytest.fixture(params=["shipped", "pure-python-layouts", "pure-python-pages"])
def decoder(request, monkeypatch):
    """The decoders, and pure Python's page at once (``_Run._usual_page``) on these pages of 10."""
    if request.param != "shipped":
        layouts.forget()
        monkeypatch.setattr(wire, "decode_event_fast", layouts.decode_event_fast)
    monkeypatch.setattr(engine, "_PAGE_AT_ONCE", 2 if request.param == "pure-python-pages" else 10**9)
    return request.param


def _reports(pages, keyring_json, monkeypatch, **options) -> tuple[dict[str, str], dict[str, str], int]:
    """Each format's report with the usual path, and without it; and how many events it took."""
    taken = []
    usual = engine._Run._decode_entries

    def counting(run, entries, rows):
        decoded = usual(run, entries, rows)
        taken.extend(isinstance(one, Job) for one in decoded)
        return decoded

    keyring = verifier.Keyring.from_json(json.dumps(keyring_json)) if keyring_json is not None else None
    with monkeypatch.context() as patch:
        patch.setattr(engine._Run, "_decode_entries", counting)
        fast = verifier.verify_pages(copy.deepcopy(pages), keyring, **options)
    with monkeypatch.context() as patch:
        patch.setattr(engine._Run, "_usual_allowed", lambda run: False)
        general = verifier.verify_pages(copy.deepcopy(pages), keyring, **options)
    return ({fmt: render(fast, fmt) for fmt in FORMATS}, {fmt: render(general, fmt) for fmt in FORMATS},
            sum(taken))


def _event(item: dict):
    return decode_event_bytes(base64.b64decode(item["encoded_event"]))


def _reencode(item: dict, event, *, json_too: bool = True) -> None:
    """The item carries ``event``; its JSON copy of the signature follows unless ``json_too`` is False."""
    item["encoded_event"] = base64.b64encode(encode_event(event)).decode()
    if json_too and event.signature is not None:
        item["message_event_signature"] = msgspec.to_builtins(event.signature)


def _with_signature(event, **fields):
    return msgspec.structs.replace(event, signature=msgspec.structs.replace(event.signature, **fields))


def _with_body(event, **fields):
    return msgspec.structs.replace(event, body={**event.body, **fields})


# one mutation of one data item (the item, the page): each a step the usual path decides
MUTATIONS = {
    "untouched": lambda item, page: None,
    "json untrusted": lambda item, page: item.update(is_trusted=False),
    "json sender": lambda item, page: item.update(sender_id="999"),
    "json created_at_msec number": lambda item, page: item.update(created_at_msec=int(item["created_at_msec"])),
    "json created_at": lambda item, page: item.update(created_at="2026-07-25T00:00:00.000Z"),
    "json previous_id": lambda item, page: item.update(previous_id=item["previous_sequence_id"]),
    "json signature differs": lambda item, page: item["message_event_signature"].update(signature_version="8"),
    "json key info differs": lambda item, page: item["message_event_signature"].update(
        message_signing_key_info_list=[]),
    "json without signature": lambda item, page: item.pop("message_event_signature"),
    "no encoded_event": lambda item, page: item.pop("encoded_event"),
    "encoded_event not text": lambda item, page: item.update(encoded_event=5),
    "base64 padding dropped": lambda item, page: item.update(encoded_event=item["encoded_event"].rstrip("=")),
    "base64 padding added": lambda item, page: item.update(encoded_event=item["encoded_event"] + "="),
    "base64 url-safe": lambda item, page: item.update(
        encoded_event=item["encoded_event"].replace("+", "-").replace("/", "_")),
    "base64 not ascii": lambda item, page: item.update(encoded_event=item["encoded_event"][:-4] + "ÀÀÀÀ"),
    "trailing bytes": lambda item, page: item.update(encoded_event=base64.b64encode(
        base64.b64decode(item["encoded_event"]) + b"\0\0").decode()),
    "into meta": lambda item, page: page.setdefault("meta", {}).setdefault(
        "conversation_key_events", []).append(item["encoded_event"]),
    "event untrusted": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item), is_trusted=False)),
    "event trust absent": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item), is_trusted=None)),
    "event without signature": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item),
                                                                                          signature=None)),
    "signature text absent": lambda item, page: _reencode(item, _with_signature(_event(item), signature=None)),
    "signature not base64": lambda item, page: _reencode(item, _with_signature(_event(item), signature="@@@@")),
    "signature not canonical": lambda item, page: _reencode(item, _with_signature(
        _event(item), signature=_event(item).signature.signature[:-1] + "x")),
    "signature not ascii": lambda item, page: _reencode(item, _with_signature(_event(item), signature="é" * 86)),
    "signature version 1": lambda item, page: _reencode(item, _with_signature(_event(item), signature_version="1")),
    "signature version odd": lambda item, page: _reencode(item, _with_signature(_event(item),
                                                                                 signature_version="+07")),
    "signature version absent": lambda item, page: _reencode(item, _with_signature(_event(item),
                                                                                    signature_version=None)),
    "key version unknown": lambda item, page: _reencode(item, _with_signature(_event(item),
                                                                               public_key_version="1")),
    "key version absent": lambda item, page: _reencode(item, _with_signature(_event(item),
                                                                              public_key_version=None)),
    "embedded key absent": lambda item, page: _reencode(item, _with_signature(
        _event(item), signing_public_key=None, message_signing_key_info_list=None)),
    "embedded key other": lambda item, page: _reencode(item, _with_signature(
        _event(item), signing_public_key="AAAA", message_signing_key_info_list=[])),
    "sender absent": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item), sender_id=None)),
    "sender unknown": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item), sender_id="999")),
    "comma in message id": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item),
                                                                                       message_id="a,b")),
    "message id absent": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item), message_id=None)),
    "conversation absent": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item),
                                                                                       conversation_id=None)),
    "other conversation": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item),
                                                                                      conversation_id="1:2")),
    "conversation key version absent": lambda item, page: _reencode(item, msgspec.structs.replace(
        _event(item), body={k: v for k, v in _event(item).body.items() if k != "conversation_key_version"})),
    "contents absent": lambda item, page: _reencode(item, msgspec.structs.replace(
        _event(item), body={k: v for k, v in _event(item).body.items() if k != "contents"})),
    "contents empty": lambda item, page: _reencode(item, _with_body(_event(item), contents=b"")),
    "sequence id absent": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item),
                                                                                      sequence_id=None)),
    "previous absent": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item),
                                                                                   previous_sequence_id=None)),
    "created absent": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item),
                                                                                  created_at_msec=None)),
    "another kind": lambda item, page: _reencode(item, msgspec.structs.replace(
        _event(item), kind="MarkConversationReadEvent", body={"seen_until_sequence_id": "1"})),
    "not decodable": lambda item, page: item.update(encoded_event=base64.b64encode(b"\x0b\x00").decode()),
    # r118: what the usual path compares or skips, one more step each
    "trust absent in both": lambda item, page: (_reencode(item, msgspec.structs.replace(_event(item), is_trusted=None)),
                                                item.pop("is_trusted", None)),
    "json trust null": lambda item, page: item.update(is_trusted=None),
    "json id absent": lambda item, page: item.pop("id", None),
    "json id is the message id": lambda item, page: item.update(id=_event(item).message_id),
    "json id other": lambda item, page: item.update(id="123"),
    "json everything but the event absent": lambda item, page: [item.pop(k) for k in list(item)
                                                                if k != "encoded_event"],
    "json conversation token": lambda item, page: item.update(conversation_token="t"),
    "json conversation other": lambda item, page: item.update(conversation_id=item["conversation_id"] + "0"),
    "json sequence id other": lambda item, page: item.update(sequence_id="123"),
    "json previous sequence id other": lambda item, page: item.update(previous_sequence_id="123"),
    "json sequence ids swapped": lambda item, page: item.update(sequence_id=item["previous_sequence_id"],
                                                                previous_sequence_id=item["sequence_id"]),
    "json key infos absent": lambda item, page: item["message_event_signature"].pop("message_signing_key_info_list"),
    "json key info member other": lambda item, page: item["message_event_signature"][
        "message_signing_key_info_list"][0].update(member_id="999"),
    "json key info version other": lambda item, page: item["message_event_signature"][
        "message_signing_key_info_list"][0].update(public_key_version="77"),
    "json key info key other": lambda item, page: item["message_event_signature"][
        "message_signing_key_info_list"][0].update(signing_public_key="AAAA"),
    "json signing key other": lambda item, page: item["message_event_signature"].update(signing_public_key="AAAA"),
    "json key version other": lambda item, page: item["message_event_signature"].update(public_key_version="77"),
    "json signature other": lambda item, page: item["message_event_signature"].update(signature="AAAA"),
    "json two key infos": lambda item, page: item["message_event_signature"]["message_signing_key_info_list"].append(
        item["message_event_signature"]["message_signing_key_info_list"][0]),
    "key info member other": lambda item, page: _reencode(item, _with_info(_event(item), member_id="999")),
    "key info member absent": lambda item, page: _reencode(item, _with_info(_event(item), member_id=None)),
    "key info key absent": lambda item, page: _reencode(item, _with_info(_event(item), signing_public_key=None)),
    "key info version other": lambda item, page: _reencode(item, _with_info(_event(item), public_key_version="77")),
    "two key infos": lambda item, page: _reencode(item, _with_signature(
        _event(item), message_signing_key_info_list=_event(item).signature.message_signing_key_info_list * 2)),
    "signing key absent": lambda item, page: _reencode(item, _with_signature(_event(item), signing_public_key=None)),
    "signature version 02": lambda item, page: _reencode(item, _with_signature(_event(item), signature_version="02")),
    "signature version spaced": lambda item, page: _reencode(item, _with_signature(_event(item),
                                                                                    signature_version=" 2")),
    "signature version not ascii": lambda item, page: _reencode(item, _with_signature(_event(item),
                                                                                       signature_version="\u0662")),
    "signature version junk": lambda item, page: _reencode(item, _with_signature(_event(item), signature_version="x")),
    "signature empty": lambda item, page: _reencode(item, _with_signature(_event(item), signature="")),
    "signature unpadded": lambda item, page: _reencode(item, _with_signature(
        _event(item), signature=_event(item).signature.signature.rstrip("="))),
    "signature over-padded": lambda item, page: _reencode(item, _with_signature(
        _event(item), signature=_event(item).signature.signature.rstrip("=") + "==")),
    "event conversation token": lambda item, page: _reencode(item, msgspec.structs.replace(
        _event(item), conversation_token="t")),
    "relay source": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item), relay_source=3)),
    "conversation reversed": lambda item, page: _reencode(item, msgspec.structs.replace(
        _event(item), conversation_id=":".join(reversed(_event(item).conversation_id.split(":"))))),
    "page of another conversation": lambda item, page: page.update(conversation_id="1:2"),
    "conversation key version empty": lambda item, page: _reencode(item, _with_body(_event(item),
                                                                                     conversation_key_version="")),
    "message id empty": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item), message_id="")),
    "sender empty": lambda item, page: _reencode(item, msgspec.structs.replace(_event(item), sender_id="")),
    "key version empty": lambda item, page: _reencode(item, _with_signature(_event(item), public_key_version="")),
    "a group create in its place": lambda item, page: page["data"].__setitem__(
        page["data"].index(item), _group_create(item)),
}


def _with_info(event, **fields):
    info = event.signature.message_signing_key_info_list[0]
    return _with_signature(event, message_signing_key_info_list=[msgspec.structs.replace(info, **fields)])


def _group_create(item: dict) -> dict:
    """A GroupCreate (review 70: never of a 1:1 conversation) in ``item``'s place, signed by its sender's key."""
    event = _event(item)
    sender = next((m for m in _MEMBERS if m.user_id == event.sender_id), _MEMBERS[0])
    create = forge_event(sender, "GroupChangeEvent.GroupCreate", {
        "member_ids": [m.user_id for m in _MEMBERS], "title": "x",
        "conversation_key_version": event.body["conversation_key_version"]},
        conversation_id=event.conversation_id, sequence_id=event.sequence_id,
        previous_sequence_id=event.previous_sequence_id, created_at_msec=event.created_at_msec)
    return item_json(create)


def _with_mutation(pages: list[dict], page_at: int, item_at: int, mutation: str) -> list[dict]:
    """A copy of ``pages`` with ``mutation`` applied to the message event ``item_at`` of page ``page_at``."""
    pages = copy.deepcopy(pages)
    page = pages[page_at]
    item = page["data"][item_at]
    assert _event(item).kind == "MessageCreateEvent"
    MUTATIONS[mutation](item, page)
    return pages


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_mutation_gives_the_same_report(history, monkeypatch, decoder, mutation):
    conv, pages, ring = history
    pages = _with_mutation(pages, 1, 3, mutation)
    fast, general, taken = _reports(pages, ring, monkeypatch, conversation_keys=conv.conversation_keys)
    assert fast == general
    assert taken >= 30  # the other events took the usual path


KEYRINGS = {
    "as given": lambda ring: ring,
    "no keyring": lambda ring: None,
    "a member missing": lambda ring: {"keys": ring["keys"][:1]},
    "a binding broken": lambda ring: {"keys": [{**ring["keys"][0], "identity_public_key_signature": "AAAA"},
                                               *ring["keys"][1:]]},
    "a conflict": lambda ring: {"keys": [*ring["keys"], {**ring["keys"][1], "signing_public_key":
                                                         ring["keys"][0]["signing_public_key"]}]},
}


@pytest.mark.parametrize("keyring", sorted(KEYRINGS))
@pytest.mark.parametrize("options", [{}, {"strict": True}, {"allow_embedded_keys": True}])
def test_each_keyring_gives_the_same_report(history, monkeypatch, decoder, keyring, options):
    conv, pages, ring = history
    fast, general, _taken = _reports(pages, KEYRINGS[keyring](copy.deepcopy(ring)), monkeypatch,
                                     conversation_keys=conv.conversation_keys, **options)
    assert fast == general


def test_random_mutations_give_the_same_reports(history, monkeypatch, decoder):
    """Several mutations at once, anywhere, with every keyring and option."""
    conv, pages, ring = history
    rng = random.Random(5)
    names = sorted(MUTATIONS)
    for _ in range(20):
        mutated = copy.deepcopy(pages)
        for _ in range(rng.randint(1, 5)):
            page = rng.choice(mutated)
            items = [item for item in page["data"] if isinstance(item.get("encoded_event"), str)
                     and "ÀÀ" not in item["encoded_event"]]
            if items:
                try:
                    MUTATIONS[rng.choice(names)](rng.choice(items), page)
                except (ValueError, TypeError, AttributeError, KeyError, wire.MalformedEvent):
                    pass  # an earlier mutation left this item undecodable or without that field
        keyring = KEYRINGS[rng.choice(sorted(KEYRINGS))](copy.deepcopy(ring))
        options = rng.choice([{}, {"strict": True}, {"allow_embedded_keys": True}])
        fast, general, _taken = _reports(mutated, keyring, monkeypatch, conversation_keys=conv.conversation_keys,
                                         **options)
        assert fast == general


def test_the_usual_path_is_taken_only_when_it_may(history, monkeypatch):
    """Reviewers that read created messages, or no keys before the pages: the general path alone."""
    conv, pages, ring = history
    taken = []
    usual = engine._Run._decode_entries

    def counting(run, entries, rows):
        decoded = usual(run, entries, rows)
        taken.extend(one for one in decoded if isinstance(one, Job))
        return decoded

    monkeypatch.setattr(engine._Run, "_decode_entries", counting)
    verifier.verify_pages(copy.deepcopy(pages), None, conversation_keys=conv.conversation_keys)
    assert not taken  # no keyring
    verifier.verify_pages(copy.deepcopy(pages), verifier.Keyring.from_json(json.dumps(ring)),
                          conversation_keys=conv.conversation_keys)
    assert len(taken) >= 38  # every signed MessageCreateEvent (the key changes are not)



def test_a_signer_is_made_once(history, monkeypatch, decoder):
    """The usual path's signer (its detail, keyring row, embedded keys and their carriers) is made
    once per distinct signer fields and page and shared by that signer's later events of the page,
    to the same report; a part checked for another process carries none of them."""
    conv, pages, ring = history
    made = []
    signer = engine._Run._signer
    monkeypatch.setattr(engine._Run, "_signer", lambda run, *fields: made.append(fields) or signer(run, *fields))
    fast, general, taken = _reports(pages, ring, monkeypatch, conversation_keys=conv.conversation_keys)
    assert fast == general and taken >= 38
    assert len(set(made)) == 2 and len(made) == 2 * len(pages)  # the history's two members, once a page
    keyring = verifier.Keyring.from_json(json.dumps(ring))
    part = verifier.Verification(conversation_keys=conv.conversation_keys)
    part.expect_keyring(keyring, facts=False)
    for page in copy.deepcopy(pages):
        part.add_page(page)
    assert part._run.signers  # kept while pages come
    part.check_part(keyring)
    assert not part._run.signers


@pytest.mark.parametrize("change", ["conflicting row", "row replaced"])
def test_a_keyring_row_changed_between_pages_decides_the_later_events(history, monkeypatch, decoder, change):
    """A caller may add a keyring row between ``add_page`` calls: each page's events are decided by
    the row as it is when the page is added, the usual path as the general one. (A signer kept from
    an earlier page held the old key: a slot become a conflict still verified its later events.)"""
    conv, pages, ring = history
    sender = _MEMBERS[0]

    def report(usual: bool) -> str:
        keyring = verifier.Keyring.from_json(json.dumps(ring))
        verification = verifier.Verification(conversation_keys=conv.conversation_keys)
        verification.expect_keyring(keyring, facts=False)
        for number, page in enumerate(copy.deepcopy(pages)):
            if number == 2:
                if change == "conflicting row":
                    keyring.add(KeyringEntry(**Identity.from_seed(sender.user_id, sender.version,
                                                                  "changed").keyring_entry()))
                else:  # (the public ``keys`` map, set directly)
                    keyring.keys[(sender.user_id, sender.version)] = keyring.keys[(_MEMBERS[1].user_id,
                                                                                   _MEMBERS[1].version)]
            with monkeypatch.context() as patch:
                if not usual:
                    patch.setattr(engine._Run, "_usual_allowed", lambda run: False)
                verification.add_page(page)
        return render(verification.finish(keyring), "json")

    fast, general = report(True), report(False)
    assert fast == general
    assert '"valid"' in general and ('"unknown_key"' if change == "conflicting row" else '"invalid"') in general


@pytest.mark.parametrize("mutation", ["untouched", "embedded key other", "key info member other", "sender unknown"])
def test_signers_past_the_bound_give_the_same_report(history, monkeypatch, decoder, mutation):
    """Past ``_STAGED_KEPT`` distinct signers, the others are made for each event: the same report."""
    conv, pages, ring = history
    pages = copy.deepcopy(pages)
    for page in pages[1:3]:
        for item in page["data"][2:6]:
            MUTATIONS[mutation](item, page)
    monkeypatch.setattr(engine, "_STAGED_KEPT", 1)
    fast, general, _taken = _reports(pages, ring, monkeypatch, conversation_keys=conv.conversation_keys)
    assert fast == general


def test_event_facts_are_the_same(history, monkeypatch, decoder):
    """The ledger's and archive's run (``expect_keyring(facts=True)``): its embedded keys and facts too."""
    conv, pages, ring = history
    pages = copy.deepcopy(pages)
    for mutation, at in (("key info member other", 2), ("signing key absent", 4), ("json untrusted", 6)):
        MUTATIONS[mutation](pages[2]["data"][at], pages[2])
    keyring = verifier.Keyring.from_json(json.dumps(ring))

    def run():
        verification = verifier.Verification(conversation_keys=conv.conversation_keys)
        verification.expect_keyring(keyring, facts=True)
        for page in copy.deepcopy(pages):
            verification.add_page(page)
        facts = verification.event_facts()
        return facts, render(verification.finish(keyring), "json")

    fast = run()
    with monkeypatch.context() as patch:
        patch.setattr(engine._Run, "_usual_allowed", lambda run: False)
        general = run()
    assert fast == general


def test_signers_found_by_comparing_or_by_hashing_give_the_same_report(history, monkeypatch, decoder):
    """A page's signers, up to ``_SCANNED_SIGNERS`` of them, are found by comparing their fields,
    more by a dict: either way each is made once a page, and the report is the general path's."""
    conv, pages, ring = history
    pages = copy.deepcopy(pages)
    for page in pages[1:3]:  # pages of up to five signers, some of them refused
        for mutation, item in zip(["embedded key other", "key info member other", "sender unknown"],
                                  page["data"][2:5]):
            MUTATIONS[mutation](item, page)
    made: dict[int, list[object]] = {}
    signer = engine._Run._signer
    for scanned in (0, 1, 100):
        made[scanned] = []
        with monkeypatch.context() as patch:
            patch.setattr(engine, "_SCANNED_SIGNERS", scanned)
            patch.setattr(engine._Run, "_signer",
                          lambda run, fields, made=made[scanned]: made.append(fields) or signer(run, fields))
            fast, general, taken = _reports(pages, ring, monkeypatch, conversation_keys=conv.conversation_keys)
        assert fast == general and taken >= 30
    assert made[0] == made[1] == made[100] and len(set(made[0])) > 2


# ---------------------------------------------------------------- a page's usual events at once (round 134)

@pytest.fixture(scope="module")
def long_pages():
    """Pages of 40 events (the page path's from ``_PAGE_AT_ONCE`` on, 16), two signers alternating;
    the last (oldest) holds the key change, the first is read one by one (its layout is learnt)."""
    conv = build_conversation(200, members=_MEMBERS, seed="usual-pages", realistic_crypto=False)
    return conv, conv.pages(40), json.loads(json.dumps(conv.keyring()))


def _three_reports(pages, ring, monkeypatch, conv, **options) -> tuple[str, str, str, int]:
    """The JSON report by the page path, by the per-event usual path alone, and by the general path;
    and how many events the page path took."""
    keyring = verifier.Keyring.from_json(json.dumps(ring))
    taken = []
    page_at_once = engine._Run._usual_page

    def counting(run, entries, rows):
        jobs = page_at_once(run, entries, rows)
        taken.append(len(jobs) if jobs is not None else 0)
        return jobs

    def report(**patches) -> str:
        layouts.forget()
        with monkeypatch.context() as patch:
            patch.setattr(wire, "decode_event_fast", layouts.decode_event_fast)
            for name, value in patches.items():
                patch.setattr(engine._Run, name, value)
            return render(verifier.verify_pages(copy.deepcopy(pages), keyring, conversation_keys=conv.conversation_keys,
                                                **options), "json")

    pages_at_once = report(_usual_page=counting)
    one_by_one = report(_usual_page=lambda run, entries, rows: None)
    general = report(_usual_allowed=lambda run: False)
    return pages_at_once, one_by_one, general, sum(taken)


def test_pages_at_once_are_taken_and_give_the_same_report(long_pages, monkeypatch):
    conv, pages, ring = long_pages
    at_once, one_by_one, general, taken = _three_reports(pages, ring, monkeypatch, conv)
    assert at_once == one_by_one == general
    assert taken == 120  # pages 1 to 3


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_page_with_one_unusual_event_is_read_one_by_one_to_the_same_report(long_pages, monkeypatch, mutation):
    """Any one event the usual path would not take sends its page to the per-event path: the
    page path must never take what that would refuse (every mutation, in the middle of a page)."""
    conv, pages, ring = long_pages
    pages = _with_mutation(pages, 2, 17, mutation)
    at_once, one_by_one, general, taken = _three_reports(pages, ring, monkeypatch, conv)
    assert at_once == one_by_one == general
    assert taken in (80, 120)  # pages 1 and 3 (and page 2 where the mutation left its event usual)


def _non_ascii_message_id(item: dict, page: dict) -> None:
    _reencode(item, msgspec.structs.replace(_event(item), message_id="dd96a55c-9300-48e3-9695-fddb95af93é"))


MIXED = {  # what a page may hold among its usual events
    "layout change (a longer sender id)": MUTATIONS["sender unknown"],
    "layout change (a relay source)": MUTATIONS["relay source"],
    "non-ASCII message id": _non_ascii_message_id,
    "bad base64": MUTATIONS["base64 url-safe"],
    "base64 unpadded": MUTATIONS["base64 padding dropped"],
    "untrusted": MUTATIONS["event untrusted"],
    "another kind": MUTATIONS["another kind"],
    "line break in a message id": lambda item, page: _reencode(item, msgspec.structs.replace(
        _event(item), message_id="a\nb")),
}


@pytest.mark.parametrize("seed", range(6))
def test_mixed_pages_give_the_same_report(long_pages, monkeypatch, seed):
    """Usual and unusual events interleaved, several to a page, with every keyring and option: the
    page path, the per-event one and the general one agree."""
    conv, pages, ring = long_pages
    rng = random.Random(seed)
    pages = copy.deepcopy(pages)
    names = sorted(MIXED) + sorted(MUTATIONS)
    for page in pages[1:]:
        for item in rng.sample(page["data"], rng.randint(0, 4)):
            name = rng.choice(names)
            try:
                (MIXED.get(name) or MUTATIONS[name])(item, page)
            except (ValueError, TypeError, AttributeError, KeyError, wire.MalformedEvent):
                pass  # an earlier mutation left this item undecodable or without that field
    options = rng.choice([{}, {"strict": True}, {"allow_embedded_keys": True}])
    keyring = KEYRINGS[rng.choice(sorted(KEYRINGS))](copy.deepcopy(ring))
    if keyring is None:
        keyring = ring
    at_once, one_by_one, general, _taken = _three_reports(pages, keyring, monkeypatch, conv, **options)
    assert at_once == one_by_one == general


def test_a_page_with_only_layout_changes_is_taken_after_its_layout_is_learnt(long_pages, monkeypatch):
    """A page whose events all have a second layout (another sender id's length) is read one by one
    while that layout is new, then at once through it, first among the remembered ones."""
    conv, pages, ring = long_pages
    pages = copy.deepcopy(pages)
    for page in pages:
        for item in page["data"]:
            if _event(item).kind == "MessageCreateEvent" and item["sender_id"] == _MEMBERS[0].user_id:
                _reencode(item, msgspec.structs.replace(_event(item), message_id=_event(item).message_id + "x"))
    at_once, one_by_one, general, taken = _three_reports(pages, ring, monkeypatch, conv)
    assert at_once == one_by_one == general
    assert taken == 0  # two layouts alternate within each page: never one layout for a whole page


@pytest.mark.parametrize("size", [15, 16, 17])
def test_pages_about_the_threshold_are_taken_from_it_on(monkeypatch, size):
    """At the shipped ``_PAGE_AT_ONCE`` (16): a page of 15 data events is read one by one, pages of
    16 and 17 at once (but the first, whose layout is learnt, and the last, holding the history's
    first event); the three paths give the same report either way."""
    conv = build_conversation(4 * size + 1, members=_MEMBERS, seed="usual-threshold", realistic_crypto=False)
    pages = conv.pages(size)
    at_once, one_by_one, general, taken = _three_reports(pages, json.loads(json.dumps(conv.keyring())), monkeypatch,
                                                         conv)
    assert at_once == one_by_one == general
    middle = sum(len(page["data"]) for page in pages[1:-1])
    assert engine._PAGE_AT_ONCE == 16 and middle >= 2 * size and taken == (middle if size >= 16 else 0)


def test_a_large_page_is_read_one_event_at_a_time_and_leaves_no_plan_behind(monkeypatch):
    """A page's plan (``layouts._PagePlan``) holds some fifteen slices an event, about the page's own
    JSON in size: pages of ever other large sizes kept eight of them a layout after their run (77 MB
    for eight pages of 5,000 events; round 139). And the page path holds a page's joined heads, tails
    and texts at once: pages of 20,000 events peaked at 309 MB where one event at a time took 220 MB.
    So a page of more than ``layouts.PLAN_KEPT`` data events is read one event at a time (the API
    serves 100 a page), and ``usual_page`` keeps no plan for one."""
    large = layouts.PLAN_KEPT + 1
    conv = build_conversation(3 * large + 1, members=_MEMBERS, seed="usual-large", realistic_crypto=False)
    keyring = verifier.Keyring.from_json(json.dumps(conv.keyring()))
    taken = []
    page_at_once = engine._Run._usual_page

    def counting(run, entries, rows):
        jobs = page_at_once(run, entries, rows)
        taken.append((len(entries), len(jobs) if jobs is not None else 0))
        return jobs

    layouts.forget()
    monkeypatch.setattr(wire, "decode_event_fast", layouts.decode_event_fast)
    monkeypatch.setattr(engine._Run, "_usual_page", counting)
    reports = {}
    for size in (large, 20):
        reports[size] = render(verifier.verify_pages(conv.pages(size), keyring), "json")
        assert json.loads(reports[size])["verdict"] == "pass"
    assert all(entries <= layouts.PLAN_KEPT for entries, _ in taken)  # the large pages: never offered
    assert sum(jobs for entries, jobs in taken if entries == 20) > 100 * 20  # the small ones: taken at once
    large_page = conv.pages(large)[1]["data"]
    raws = [base64.b64decode(item["encoded_event"]) for item in large_page]
    assert len(raws) == large and layouts.usual_page(raws, wire.DEFAULT_LIMITS) is not None
    assert [count for layout in layouts._recent if layout.page is not None for count in layout.page.plans] == [20]
