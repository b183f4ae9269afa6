"""Attachments: one at a time, capped, with names safe to store and to download."""

import base64
from email.message import EmailMessage
from pathlib import Path

import pytest

from helpdesk import mail

CORPUS = Path(__file__).parent / "corpus"


def _with_files(*files: tuple[str, str, bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Customer <c@example.com>"
    msg["Subject"] = "files"
    msg.set_content("See the files.")
    msg.add_alternative("<p>See the files.</p>", subtype="html")
    for filename, ctype, data in files:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def test_each_attachment_comes_decoded_with_its_metadata():
    # Given a mail with a PDF and a screenshot
    raw = (CORPUS / "attachments_pdf_png.eml").read_bytes()

    # When its attachments are iterated
    pdf, png = list(mail.iter_attachments(raw))

    # Then each carries its decoded bytes, size and type; the body parts are not attachments
    assert pdf.content.startswith(b"%PDF-1.4") and pdf.size == len(pdf.content)
    assert (pdf.index, pdf.filename, pdf.content_type) == (1, "invoice-2024-001.pdf", "application/pdf")
    assert pdf.skipped is None
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n") and png.index == 2
    # ...and the ticket's list says the same without the bytes
    listed = mail.parse_inbound(raw).attachments
    assert [(a.filename, a.size) for a in listed] == [(pdf.filename, pdf.size), (png.filename, png.size)]
    assert not any(hasattr(a, "content") for a in listed)


def test_iteration_is_lazy_one_attachment_at_a_time():
    # Given a parsed mail with three files
    msg = mail.parse_message(_with_files(*[(f"f{i}.bin", "application/octet-stream", bytes([i]) * 1000)
                                           for i in range(3)]))

    # When the caller takes the first one only
    first = next(mail.iter_attachments(msg))

    # Then it got one (the others are decoded only when reached)
    assert first.filename == "f0.bin" and first.content == b"\x00" * 1000


def test_attachments_over_the_cap_are_listed_as_skipped_without_payload():
    raw = _with_files(("small.txt", "text/plain", b"hello"), ("big.zip", "application/zip", b"\x01" * 50_000))

    small, big = list(mail.iter_attachments(raw, max_bytes=10_000))

    assert small.content == b"hello" and small.skipped is None
    assert (big.filename, big.skipped, big.content) == ("big.zip", "too_large", None)
    assert 49_000 <= big.size <= 51_000
    listed = mail.parse_inbound(raw, max_attachment_bytes=10_000).attachments
    assert [a.skipped for a in listed] == [None, "too_large"]


def test_too_many_attachments_are_listed_as_skipped():
    raw = _with_files(*[(f"{i}.txt", "text/plain", b"x") for i in range(5)])
    got = list(mail.iter_attachments(raw, max_count=3))
    assert [a.skipped for a in got] == [None, None, None, "too_many", "too_many"]
    assert [a.content for a in got[3:]] == [None, None]


def test_duplicate_names_are_made_unique():
    raw = _with_files(("photo.jpg", "image/jpeg", b"1"), ("photo.jpg", "image/jpeg", b"2"),
                      ("PHOTO.jpg", "image/jpeg", b"3"), ("", "image/jpeg", b"4"))
    assert [a.filename for a in mail.iter_attachments(raw)] == [
        "photo.jpg", "photo (2).jpg", "PHOTO (3).jpg", "attachment-4.jpg"]


def test_an_attached_text_file_is_an_attachment_not_body():
    raw = _with_files(("notes.txt", "text/plain", b"secret notes"))
    inbound = mail.parse_inbound(raw)
    assert inbound.text == "See the files."
    assert [a.filename for a in inbound.attachments] == ["notes.txt"]


def test_base64_with_garbage_is_decoded_leniently():
    raw = (b"From: c@example.com\nSubject: s\nContent-Type: multipart/mixed; boundary=b\n\n--b\n"
           b"Content-Type: text/plain\n\nbody\n--b\nContent-Type: application/pdf; name=a.pdf\n"
           b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(b"%PDF-1.4 data")[:-3] + b"!!\n--b--\n")
    (attachment,) = mail.iter_attachments(raw)
    assert attachment.content.startswith(b"%PDF-1.4")


@pytest.mark.parametrize(("name", "safe"), [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
    ("C:\\Users\\eve\\notes.txt", "notes.txt"),
    ("/absolute/path/report.pdf", "report.pdf"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),
    ("bell\x07\r\nname.pdf", "bellname.pdf"),
    ("  .hidden  ", "hidden"),
    ("..", "attachment-3.pdf"),
    ("", "attachment-3.pdf"),
    ("a<b>c:d\"e|f?g*h.txt", "a_b_c_d_e_f_g_h.txt"),
    ("CON.txt", "_CON.txt"),
    ("Re\u0301sume\u0301.pdf", "Résumé.pdf"),  # NFC
    ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),
    ("日本語" * 30 + ".docx", "日本語" * 12 + "日本.docx"),
])
def test_safe_filename(name, safe):
    assert mail.safe_filename(name, 3, "application/pdf") == safe
    assert len(safe.encode()) <= mail.FILENAME_MAX_BYTES


def test_unknown_type_gets_a_bin_fallback_name():
    assert mail.safe_filename("", 7, "application/x-strange") == "attachment-7.bin"
