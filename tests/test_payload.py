"""Signed payloads pinned to the exact strings of protocol.md §3.3/§3.4."""

import base64

import pytest
from helpers import fixture

from verifier.payload import PayloadUnavailable, build_payload, parse_signature_version
from verifier.wire import MessageEvent, decode_event_b64


def event(kind, body, message_id="m-1", sender="1111", conv="1111:2222"):
    return MessageEvent(message_id=message_id, sender_id=sender, conversation_id=conv, kind=kind, body=body)


def test_fixture_message_payload():
    _raw, e = decode_event_b64(fixture()["event_message_b64"])
    assert build_payload(e, 7) == (
        b"MessageCreateEvent,2c2a1d32-988b-4b0e-9e63-c3baab3003fd,1111,1111:2222,1001,"
        b"yju49fSvP23md4h8MxYDM7/yP5czAJioJV+XI7e3bBM4gzkCp4+5iBBX4Jyee/0tULcB8Tkkl6qNbcRN9lWROcUxPyPGVVRp7WSqgVo")


def test_fixture_key_change_payload_v7_and_v5():
    f = fixture()
    _raw, e = decode_event_b64(f["event_key_change_b64"])
    key = base64.b64decode(f["conversation_key_b64"])
    assert build_payload(e, 7, {"1001": key}) == \
        b"ConversationKeyChangeEvent,kc-msg-1,1111,1111:2222,1001,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAM"
    v5 = build_payload(e, 5).decode()
    assert v5.startswith("ConversationKeyChangeEvent,kc-msg-1,1111,1111:2222,1001,1111,BGHFvh3iL7V+")
    assert v5.endswith("E4=,1")
    with pytest.raises(PayloadUnavailable) as exc:
        build_payload(e, 6)
    assert exc.value.status == "needs_conversation_key"


GMA = {"member_ids": ["n1"], "current_member_ids": ["c1", "c2"], "current_admin_ids": ["a1"],
       "current_title": "T", "conversation_key_version": "42", "current_pending_member_ids": ["p1"],
       "screen_capture_blocking_enabled": True,
       "group_invite_enable": {"invite_url": "https://x/i", "affiliate_id": "aff", "expires_at_msec": 99}}
GMA_HEAD = "GroupChangeEvent.GroupMemberAddChange,m-1,1111,1111:2222,"


@pytest.mark.parametrize("version,tail", [
    (2, "n1,c1,c2,a1,T,null,null,42"),
    (3, "n1,c1,c2,a1,p1,T,null,null,42"),
    (4, "n1,c1,c2,a1,p1,T,null,null,42"),
    (5, "n1,c1,c2,a1,p1,T,null,null,42,true"),
    (6, "n1,c1,c2,a1,p1,T,null,null,42,true"),
    (7, "n1,c1,c2,a1,T,null,null,42,true,https://x/i,aff,99"),
])
def test_group_member_add_by_version(version, tail):
    assert build_payload(event("GroupChangeEvent.GroupMemberAddChange", GMA), version).decode() == GMA_HEAD + tail


@pytest.mark.parametrize("e,version,keys,expected", [
    (event("GroupChangeEvent.GroupMemberAddChange",
           {"member_ids": ["new-user-1"], "current_member_ids": ["existing-1", "existing-2"],
            "current_admin_ids": ["existing-1"], "conversation_key_version": "42"},
           "msg-1", "sender-1", "conv-1"), 7, None,
     "GroupChangeEvent.GroupMemberAddChange,msg-1,sender-1,conv-1,new-user-1,existing-1,existing-2,"
     "existing-1,null,null,null,42,null"),
    (event("GroupChangeEvent.GroupCreate", {"member_ids": ["member-1", "member-2"], "admin_ids": ["x"],
                                            "conversation_key_version": "42", "ttl_msec": 5},
           "msg-gc", "sender-1", "g1"), 7, None,
     "GroupChangeEvent.GroupCreate,msg-gc,sender-1,42,member-1,member-2,null,null,null"),
    (event("GroupChangeEvent.GroupCreate", {"member_ids": ["a"], "conversation_key_version": "7",
                                            "is_legacy_group_upgrade": True, "title": "My Group",
                                            "avatar_url": "https://img.com/a.png"}, "msg-gc2", "admin-1"), 4, None,
     "GroupChangeEvent.GroupCreate,msg-gc2,admin-1,7,a,true,My Group,https://img.com/a.png"),
    (event("GroupChangeEvent.GroupCreate", {"member_ids": ["a"], "conversation_key_version": "7",
                                            "title": "My Group"}, "msg-gc2", "admin-1"), 3, None,
     "GroupChangeEvent.GroupCreate,msg-gc2,admin-1,7,a"),
    (event("ConversationKeyChangeEvent", {"conversation_key_version": "42"}, "msg-2", "sender-1", "conv-1"), 7,
     {"42": bytes(range(32))},
     "ConversationKeyChangeEvent,msg-2,sender-1,conv-1,42,AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
    (event("MessageDeleteEvent", {"sequence_ids": ["seq-10", "seq-11"], "delete_message_action": 2},
           "u-1", "111", "111:222"), 7, None, "MessageDeleteEvent,u-1,111,111:222,2,seq-10,seq-11"),
    (event("MessageDeleteEvent", {"sequence_ids": ["seq-1"], "delete_message_action": 1}, "u-1", "111", "g999"),
     7, None, "MessageDeleteEvent,u-1,111,g999,1,seq-1"),
    (event("MarkConversationReadEvent", {"seen_until_sequence_id": "77", "seen_at_millis": 1700000050000}), 7,
     None, "MarkConversationReadEvent,m-1,1111,1111:2222,77,1700000050000"),
    (event("MarkConversationUnreadEvent", {"seen_until_sequence_id": "77"}), 7, None,
     "MarkConversationUnreadEvent,m-1,1111,1111:2222,77"),
    (event("ConversationDeleteEvent", {"options": {"clear_all_messages": True, "sort_order_msec": 1700000000000}}),
     7, None, "ConversationDeleteEvent,m-1,1111,1111:2222,true,1700000000000"),
    (event("ConversationDeleteEvent", {}), 7, None, "ConversationDeleteEvent,m-1,1111,1111:2222"),
    (event("ConversationMetadataChangeEvent.MessageDurationChange",
           {"ttl_msec": 86400000, "apply_to_all_messages": True}), 7, None,
     "ConversationMetadataChangeEvent.MessageDurationChange,m-1,1111,1111:2222,86400000"),
    (event("ConversationMetadataChangeEvent.MuteConversation", {"muted_conversation_ids": ["a", "b"]}), 7, None,
     "ConversationMetadataChangeEvent.MuteConversation,m-1,1111,1111:2222,a,b"),
    (event("ConversationMetadataChangeEvent.DisableScreenCaptureBlocking", {}), 2, None,
     "ConversationMetadataChangeEvent.DisableScreenCaptureBlocking,m-1,1111,1111:2222"),
    (event("GroupChangeEvent.GroupTitleChange", {"conversation_key_version": "42"}), 7, None,
     "GroupChangeEvent.GroupTitleChange,m-1,1111,1111:2222,42,"),
    (event("GroupChangeEvent.GroupInviteEnable", {"invite_url": "https://x/i", "expires_at_msec": 99,
                                                  "affiliate_id": "aff"}), 7, None,
     "GroupChangeEvent.GroupInviteEnable,m-1,1111,1111:2222,https://x/i,99,aff"),
    (event("GroupChangeEvent.GroupJoinReject", {"rejected_user_ids": ["5", "6"]}), 7, None,
     "GroupChangeEvent.GroupJoinReject,m-1,1111,1111:2222,5,6"),
    (event("MessageCreateEvent", {"contents": b"\0\1", "conversation_key_version": "9"}, conv=None), 7, None,
     "MessageCreateEvent,m-1,1111,9,AAE"),
])
def test_pinned_payloads(e, version, keys, expected):
    assert build_payload(e, version, keys).decode() == expected


@pytest.mark.parametrize("e,reason", [
    (event("GroupChangeEvent.GroupTitleChange", {"conversation_key_version": "4", "custom_title": "a,b"}), "comma"),
    (event("MessageCreateEvent", {"contents": b"x"}), "unencrypted"),
    (event("MessageDeleteEvent", {"sequence_ids": []}), "delete_message_action"),
    (MessageEvent(sender_id="1", kind="MarkConversationUnreadEvent", body={}), "message_id"),
    (event("MessageTypingEvent", {}), "no change the protocol signs"),
])
def test_unbuildable_payloads(e, reason):
    with pytest.raises(PayloadUnavailable, match=reason) as exc:
        build_payload(e, 7)
    assert exc.value.status == "unverifiable"


@pytest.mark.parametrize("text,version", [
    (None, 7), ("7", 7), ("+7", 7), ("07", 7), (" 7", 7), ("7 ", 7), ("abc", 7), ("1", 1), ("-3", -3),
    ("99", 99), ("2147483648", 7), ("", 7),
])
def test_signature_version_parsing(text, version):
    assert parse_signature_version(text)[0] == version
