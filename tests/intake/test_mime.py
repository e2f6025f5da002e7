from __future__ import annotations

import base64

import pytest

from intake.errors import RejectedInput
from intake.mime import Limits, parse_email
from tests.factories import NOW, make_email


def parse(raw: bytes, limits: Limits = Limits()):
    return parse_email(raw, received_at=NOW, source="test", raw_ref=None, limits=limits)


def test_plain_message_fields() -> None:
    parsed = parse(make_email(references="<a@x> <b@x>", in_reply_to="<b@x>"))
    m = parsed.message
    assert m.channel == "email"
    assert m.external_id == "m1@hacienda.gob.mx"
    assert m.sender.address == "ana@hacienda.gob.mx"
    assert m.sender.name == "Ana Gómez"
    assert [r.address for r in m.recipients] == ["helpdesk@osds.example"]
    assert m.subject == "Validation errors in our tender data"
    assert "validation errors" in m.text
    assert m.thread.in_reply_to == ("b@x",)
    assert m.thread.references == ("a@x", "b@x")
    assert m.sent_at == NOW


def test_missing_message_id_gets_a_stable_content_key() -> None:
    # Given the same message without Message-ID, received twice at different times
    raw = make_email(message_id=None)
    first = parse_email(raw, received_at=NOW, source="a", raw_ref=None).message
    second = parse_email(raw, received_at=NOW.replace(hour=23), source="b", raw_ref=None).message
    # Then the key is a content hash, the same both times
    assert first.external_id.startswith("sha256:")
    assert first.external_id == second.external_id


def test_html_only_body_is_converted_to_text_and_kept() -> None:
    raw = (
        b"From: a@b.org\r\nTo: helpdesk@osds.example\r\nSubject: html\r\nMessage-ID: <h@b.org>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><p>Where can I <b>download</b> the data?</p><table><tr><td>a</td><td>b</td></tr></table></body></html>"
    )
    m = parse(raw).message
    assert "Where can I download the data?" in m.text
    assert "<b>" not in m.text
    assert m.html is not None
    assert "<table>" in m.html


def test_unknown_charset_is_decoded_with_replacement_and_noted() -> None:
    raw = (
        b"From: a@b.org\r\nSubject: charset\r\nMessage-ID: <c@b.org>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=x-no-such-charset\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        b"Caf\xe9 con leche \xff\xfe and more text"
    )
    m = parse(raw).message
    assert "Caf" in m.text
    assert "con leche" in m.text
    assert any("charset" in d for d in m.defects)
    m.to_json()  # JSON-safe despite the undecodable bytes


def test_latin1_quoted_printable_is_decoded() -> None:
    raw = (
        b"From: a@b.fr\r\nSubject: =?iso-8859-1?Q?Probl=E8me_de_donn=E9es?=\r\nMessage-ID: <q@b.fr>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Les donn=E9es sont incoh=E9rentes.\r\n"
    )
    m = parse(raw).message
    assert m.subject == "Problème de données"
    assert "données sont incohérentes" in m.text


def test_broken_headers_fall_back_to_raw_values() -> None:
    raw = (
        b"From: \"Broken <<< Name\" <a@b.org>\r\nTo: undisclosed-recipients:;\r\nSubject: =?utf-8?B?broken===?=\r\n"
        b"Date: not a date at all\r\nMessage-ID: <broken@b.org>\r\nContent-Type: text/plain\r\n\r\nbody text here\r\n"
    )
    m = parse(raw).message
    assert m.sender.address == "a@b.org"
    assert m.sent_at is None
    assert m.text.strip() == "body text here"


def test_nul_bytes_and_invalid_utf8_in_headers_are_made_safe() -> None:
    raw = b"From: a@b.org\r\nSubject: bad \xff\xfe subject\x00x\r\nMessage-ID: <n@b.org>\r\n\r\nbody\x00with nul\r\n"
    m = parse(raw).message
    assert "\x00" not in m.subject
    assert "\x00" not in m.text
    m.to_json()


def test_truncated_multipart_still_yields_what_arrived() -> None:
    raw = (
        b"From: a@b.org\r\nSubject: truncated\r\nMessage-ID: <t@b.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XYZ"\r\n\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\n'
        b"The first part arrived.\r\n--XYZ\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK"
    )
    m = parse(raw).message
    assert "The first part arrived." in m.text
    assert m.defects  # the missing closing boundary is noted


def test_huge_body_is_truncated_not_refused() -> None:
    raw = make_email(body="x" * (5 * 1024 * 1024))
    m = parse(raw, Limits(max_text_chars=200_000)).message
    assert m.truncated is True
    assert len(m.text) == 200_000


def test_attachments_are_listed_with_hash_and_bytes_returned() -> None:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "a@b.org"
    msg["Subject"] = "csv attached"
    msg["Message-ID"] = "<att@b.org>"
    msg.set_content("see attached")
    msg.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="data.csv")
    msg.add_attachment(b"\x89PNG" + b"\x00" * 100, maintype="image", subtype="png", filename="big.png")
    parsed = parse(msg.as_bytes(), Limits(max_attachment_bytes=8))
    names = {a.filename: a for a in parsed.message.attachments}
    assert set(names) == {"data.csv", "big.png"}
    assert names["data.csv"].stored
    assert names["data.csv"].size == 8
    assert not names["big.png"].stored  # over the cap: metadata only
    assert set(parsed.blobs) == {names["data.csv"].sha256}
    assert parsed.message.text.strip() == "see attached"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"   \r\n", "empty"),
        (b"\x00\x01\x02binary junk", "not_an_email"),
        (b"Subject: no sender\r\nMessage-ID: <x@y>\r\n\r\nhello", "no_sender"),
        (b"From: a@b.org\r\nMessage-ID: <x@y>\r\n\r\n   ", "no_content"),
    ],
)
def test_unusable_input_is_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(RejectedInput) as caught:
        parse(raw)
    assert caught.value.reason == reason


def test_oversized_input_is_rejected() -> None:
    with pytest.raises(RejectedInput) as caught:
        parse(make_email(body="y" * 5000), Limits(max_raw_bytes=2000))
    assert caught.value.reason == "too_large"


def test_signals_capture_automation_headers() -> None:
    raw = make_email(headers={"Auto-Submitted": "auto-replied", "List-Id": "<news.osds.example>"})
    signals = parse(raw).message.signals
    assert signals["auto-submitted"] == "auto-replied"
    assert signals["list-id"] == "<news.osds.example>"
    assert signals["content-type"].startswith("text/plain")


def test_base64_body_with_encoded_display_name() -> None:
    body = base64.b64encode("Olá, gostaríamos de publicar os dados.".encode()).decode()
    raw = (
        "From: =?UTF-8?B?Sm/Do28gU2lsdmE=?= <joao@planejamento.gov.br>\r\nSubject: Publicação\r\n"
        "Message-ID: <b64@gov.br>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{body}\r\n"
    ).encode()
    m = parse(raw).message
    assert m.sender.name == "João Silva"
    assert "gostaríamos" in m.text


@pytest.mark.parametrize("sender", [
    b"=?utf-8?q?Eve=0D=0ABcc=3A_victim=40evil=2Eexample?= <eve@x.example>",
    b'"=?utf-8?q?Eve=0D=0ABcc=3A_victim=40evil=2Eexample?=" <eve@x.example>',
    b"=?utf-8?b?RXZlDQpCY2M6IHZpY3RpbUBldmlsLmV4YW1wbGU=?= <eve@x.example>",
])
def test_an_encoded_line_break_in_a_display_name_injects_no_sender(sender: bytes) -> None:
    raw = b"From: " + sender + b"\r\nTo: helpdesk@osds.example\r\nSubject: hi\r\nMessage-ID: <inj@x.example>\r\n\r\nbody\r\n"
    message = parse(raw).message
    assert message.sender.address == "eve@x.example"
    assert "\n" not in message.sender.name
    assert "\r" not in message.sender.name
