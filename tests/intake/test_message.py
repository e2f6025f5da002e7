from __future__ import annotations

import json
from datetime import datetime

import pytest

from intake.errors import MessageDecodeError
from intake.message import SCHEMA_VERSION, InboundMessage, ThreadRefs
from tests.factories import make_message


def test_round_trip_through_json_is_lossless() -> None:
    # Given a message with every kind of field
    message = make_message(in_reply_to=("p@x",), references=("a@x", "p@x"), signals={"list-id": "<x>"})
    # When it is encoded and decoded
    decoded = InboundMessage.from_json(message.to_json())
    # Then nothing changed, including the version
    assert decoded == message
    assert json.loads(message.to_json())["v"] == SCHEMA_VERSION


def test_message_is_frozen() -> None:
    message = make_message()
    with pytest.raises(Exception):
        message.subject = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"{}", b'{"channel": "fax"}', b"[1,2]", b'{"v": 1, "channel": "email", "external_id": ""}'],
)
def test_invalid_payloads_raise_the_one_decode_error(payload: bytes) -> None:
    with pytest.raises(MessageDecodeError):
        InboundMessage.from_json(payload)


def test_a_newer_schema_version_is_refused() -> None:
    data = json.loads(make_message().to_json())
    data["v"] = SCHEMA_VERSION + 1
    with pytest.raises(MessageDecodeError, match="newer"):
        InboundMessage.from_json(json.dumps(data))


def test_naive_timestamps_are_refused() -> None:
    data = json.loads(make_message().to_json())
    data["received_at"] = datetime(2026, 1, 1).isoformat()
    with pytest.raises(MessageDecodeError):
        InboundMessage.from_json(json.dumps(data))


def test_referenced_ids_are_nearest_first_without_repeats_or_self() -> None:
    refs = ThreadRefs(message_id="me", in_reply_to=("b",), references=("a", "b", "me"))
    assert refs.referenced_ids() == ("b", "a")
