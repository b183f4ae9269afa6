"""The corpus: real-world shaped messages, and what a support agent should see for each."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from helpdesk import mail

CORPUS = Path(__file__).parent / "corpus"


@dataclass(frozen=True)
class Expect:
    sender: str
    subject: str
    says: tuple[str, ...] = ()  # sentences the trimmed text must contain
    hides: tuple[str, ...] = ()  # quoted history and signatures it must not
    name: str | None = None
    attachments: tuple[tuple[str, str], ...] = ()  # (filename, content type), in order
    automated: str | None = None  # a prefix of the reason, None for a person
    defects: tuple[str, ...] = ()  # substrings of recorded defects
    reference: str | None = None
    extra: dict = field(default_factory=dict)


EXPECTED = {
    "gmail_reply_alternative.eml": Expect(
        sender="maria.garcia@gmail.com", name="María García",
        subject="Re: [HD-7KQ2M9] Cannot log in after password reset",
        says=('it still says "token expired"', "María"),
        hides=("Please try the password reset link again", "wrote:"), reference="HD-7KQ2M9"),
    "outlook_reply_original_message.eml": Expect(
        sender="John.Smith@contoso.com", name="John Smith", subject="RE: [HD-4M8N2P] Invoice question",
        says=("wrong VAT number – it should be GB 123 4567 89", "accountant can’t book it"),
        hides=("Original Message", "We have received your request", "Sent: Monday"), reference="HD-4M8N2P"),
    "outlook_web_html_only.eml": Expect(
        sender="priya.patel@fabrikam.onmicrosoft.com", subject="Re: [HD-2B6D8F] CSV export fails",
        says=("The export to CSV still fails with error 0x80070005",
              "settings.png (https://contoso.sharepoint.com/:i:/g/settings.png)"),
        hides=("Could you send us a screenshot", "Outlook for Android", "From: Acme Support", "font-family"),
        reference="HD-2B6D8F"),
    "apple_mail_iphone_reply.eml": Expect(
        sender="tom.baker@icloud.com", subject="Re: [HD-6PQRST] App crashes on photo upload",
        says=("The app crashes every time I try to upload a photo from my camera roll.",),
        hides=("Sent from my iPhone", "Which version of the app", "wrote:"), reference="HD-6PQRST"),
    "thunderbird_reply_de_flowed.eml": Expect(
        sender="max.mustermann@gmx.de", subject="Re: [HD-9T3W7X] Doppelte Abbuchung für Januar",
        says=("Die Rechnung über 49,90 € wurde zweimal abgebucht, einmal am 2. und einmal am 3. Januar.",
              "Bitte erstatten Sie den doppelten Betrag."),
        hides=("schrieb Acme Support", "vielen Dank für Ihre Anfrage", "Mustermann GmbH", "Tel. +49"),
        reference="HD-9T3W7X"),
    "html_only_contact_form.eml": Expect(
        sender="lena.fischer@web.de", name="Lena Fischer", subject="Contact form: Damaged delivery, order #10023",
        says=("my order #10023 arrived damaged", "Café & Co – see the tracking page (https://track.example.com/10023)",
              "- a replacement mug", "Name Lena Fischer"),
        hides=("trackOpen", "font-family", "Enable JavaScript", "Contact form submission", "pixel.gif")),
    "base64_utf8_emoji.eml": Expect(
        sender="zoe.lefevre@gmail.com", name="Zoé Lefèvre", subject="Réclamation 🚚 livraison en retard",
        says=("Ma commande n° 88412 devait arriver lundi 🚚", "« en cours d'acheminement »")),
    "iso_8859_1_qp_french.eml": Expect(
        sender="f.beranger@orange.fr", name="François Béranger", subject="Problème de facturation",
        says=("Je n'arrive pas à télécharger ma facture de décembre",)),
    "windows_1252_8bit.eml": Expect(
        sender="oliver.twist@btinternet.com", name="Oliver Twist", subject="Charged for Premium plan",
        says=("I was charged €29 for the “Premium” plan although I’m on the free tier.",)),
    "windows_1251_russian.eml": Expect(
        sender="ivan.petrov@yandex.ru", name="Иван Петров", subject="Re: [HD-8XYZ3Q] Не могу войти",
        says=("Не могу войти в личный кабинет",), hides=("Попробуйте очистить кэш", "пишет:"),
        reference="HD-8XYZ3Q"),
    "shift_jis_japanese.eml": Expect(
        sender="taro.yamada@example.co.jp", name="山田太郎", subject="ログインできません",
        says=("①ログインできません。", "②パスワード再設定メールが届きません。", "ｶﾀｶﾅ")),
    "iso_2022_jp_japanese.eml": Expect(
        sender="hanako.suzuki@gmail.com", name="鈴木花子", subject="Re: [HD-3JKMNP] 請求書の宛名変更について",
        says=("請求書の宛名を「株式会社サンプル」に変更してください。",),
        hides=("お問い合わせありがとうございます", "2024年1月15日"), reference="HD-3JKMNP"),
    "attachments_pdf_png.eml": Expect(
        sender="sam.lee@gmail.com", subject="Invoice does not match the quote",
        says=("The attached invoice charges 12 seats, but our quote was for 10 seats.",),
        attachments=(("invoice-2024-001.pdf", "application/pdf"),
                     ("Screenshot 2024-01-19 at 14.20.11.png", "image/png"))),
    "dangerous_filenames.eml": Expect(
        sender="eve@badactor.example", subject="Documents for my claim",
        says=("Please find my documents for the warranty claim attached.",),
        attachments=(("passwd", "text/plain"), ("invoicefdp.exe", "application/octet-stream"),
                     ("report[31m.pdf", "application/pdf"), ("notes.txt", "text/plain"),
                     ("attachment-5.bin", "application/octet-stream"),
                     ("Quarterly-report-very-long-name-very-long-name-very-long-name-very-long-name-very-long-name"
                      "-very-long-name-very-long.pdf", "application/pdf"),
                     ("pdf", "application/pdf"))),
    "outlook_inline_image.eml": Expect(
        sender="anna.kowalski@northwind.pl", subject="Wrong time zone on dashboard",
        says=("The dashboard shows the wrong time zone for our team (see below).",), hides=("[cid:",),
        attachments=(("image001.png", "image/png"),)),
    "gmail_forward.eml": Expect(
        sender="nina.berg@gmail.com", subject="Fwd: Your order #55012 has shipped",
        says=("the package never arrived", "---------- Forwarded message ---------",
              "tracking number 00340434161094042557", "This line was quoted in the shipping mail.")),
    "outlook_forward_as_attachment.eml": Expect(
        sender="li.wei@contoso.com", subject="FW: Payment reminder",
        says=("We paid this on 5 January (bank reference 2024-0105-778).",), hides=("14 days overdue",),
        attachments=(("Payment reminder.eml", "message/rfc822"),)),
    "out_of_office_exchange.eml": Expect(
        sender="John.Smith@contoso.com", subject="Automatic reply: [HD-4M8N2P] Invoice question",
        says=("I am out of the office until 22 January",), automated="Exchange auto-reply",
        reference="HD-4M8N2P"),
    "vacation_autoreply.eml": Expect(
        sender="peter.jones@fabrikam.example", subject="Away until Monday",
        says=("I'm away until Monday 22 January",), automated="Auto-Submitted: auto-replied"),
    "bounce_dsn.eml": Expect(
        sender="MAILER-DAEMON@amazonses.com", subject="Delivery Status Notification (Failure)",
        says=("The message could not be delivered",), automated="delivery report (multipart/report",
        attachments=(("attachment-1.txt", "message/delivery-status"), ("attachment-2.txt", "text/rfc822-headers"))),
    "mailing_list.eml": Expect(
        sender="carlos@example.net", subject="[users] Anyone else seeing sync errors since Tuesday?",
        says=('reports "sync conflict" on every file',), automated="Precedence: list"),
    "wrong_charset_declared_ascii.eml": Expect(
        sender="zoe.martin@example.com", subject="Name shown wrongly on certificate",
        says=("My name is Zoë Martin-Núñez",), defects=("declared charset us-ascii but content is UTF-8",)),
    "unknown_charset.eml": Expect(
        sender="klaus.mueller@legacy.example", name="Klaus Müller", subject="Lizenzschlüssel funktioniert nicht",
        says=("Der Lizenzschlüssel für Herrn Müller wird als ungültig abgelehnt.",),
        defects=("unknown charset 'x-user-defined-8bit'",)),
    "truncated_multipart.eml": Expect(
        sender="raj.kumar@gmail.com", subject="Error log from the installer",
        says=('The installer stops at 87% with "error 1603".',),
        attachments=(("install.log", "text/plain"),), defects=("CloseBoundaryNotFoundDefect",)),
    "garbage_headers.eml": Expect(
        sender="real.customer@example.org", subject="Refund request not base64! ÿþ",
        says=("I asked for a refund two weeks ago",), hides=("this line is not a header", "Content-Type"),
        defects=("sender taken from Reply-To", "non-header line(s) dropped", "unparseable Date header")),
    "missing_start_boundary.eml": Expect(
        sender="ops@mailer.example", subject="Nightly import failed again",
        says=('The nightly import failed again at 02:00 with "duplicate key".',), hides=("Content-Type",),
        attachments=(("report.csv", "text/csv"),), defects=("StartBoundaryNotFoundDefect",)),
    "empty_body.eml": Expect(sender="greta.holm@gmail.com", subject="Please call me back about my contract"),
    "utf7_lone_surrogate.eml": Expect(  # UTF-7's "+2AA-" is half of a surrogate pair: never valid text
        sender="juergen.weiss@posteo.example", name="Jürgen Weiß \ufffd", subject="Rechnungsbetrag \ufffd falsch 😀",
        says=("auf meiner Rechnung steht statt des Betrags nur \ufffd, und das Symbol 😀",
              "Bitte korrigieren Sie die Rechnung für Januar.")),
    "bottom_posted_reply.eml": Expect(
        sender="bob@example.net", subject="Re: [HD-7RSTVW] Crash on start",
        says=("Version 4.2.1 on Debian 12.", '"Segmentation fault" right after the splash screen.'),
        hides=("Could you tell us which version", "exact error message", "Bob Stone"), reference="HD-7RSTVW"),
}
REJECTED = {"no_sender.eml": "no sender address"}


def test_the_corpus_and_the_table_match():
    names = {p.name for p in CORPUS.glob("*.eml")}
    assert names == set(EXPECTED) | set(REJECTED)
    assert len(names) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_agent_sees_who_wrote_what(name):
    # Given a message as SES stored it
    raw = (CORPUS / name).read_bytes()
    expect = EXPECTED[name]

    # When it is parsed
    inbound = mail.parse_inbound(raw)

    # Then the agent sees the sender, the subject, what was written (and not the history)
    assert inbound.sender.address == expect.sender
    if expect.name is not None:
        assert inbound.sender.name == expect.name
    assert inbound.subject == expect.subject
    for sentence in expect.says:
        assert sentence in inbound.text
    for hidden in expect.hides:
        assert hidden not in inbound.text
    assert bool(inbound.text) == bool(expect.says)
    # ...the files, whether a machine sent it, and what was wrong with the MIME
    assert [(a.filename, a.content_type) for a in inbound.attachments] == list(expect.attachments)
    if expect.automated is None:
        assert inbound.automated is None
    else:
        assert inbound.automated and inbound.automated.startswith(expect.automated)
    for defect in expect.defects:
        assert any(defect in d for d in inbound.defects), inbound.defects
    assert mail.find_ticket_reference(inbound.subject) == expect.reference
    # ...and nothing that DynamoDB or a browser would choke on
    for text in (inbound.text, inbound.full_text, inbound.subject, inbound.sender.name):
        text.encode("utf-8")
        assert not any(ord(c) < 32 and c not in "\n\t" for c in text)


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_a_message_without_a_sender_is_rejected_with_a_reason(name):
    # Given a message nobody can be answered for
    raw = (CORPUS / name).read_bytes()

    # When it is parsed, Then it is rejected with the reason for the rejected-mail record
    with pytest.raises(mail.UnparseableMail, match=REJECTED[name]) as raised:
        mail.parse_inbound(raw)
    assert raised.value.code == "unparseable_mail"


def test_threading_headers_are_read():
    # Given a Gmail reply to two of our messages
    inbound = mail.parse_inbound((CORPUS / "gmail_reply_alternative.eml").read_bytes())

    # Then its ids lead back to them, the most recent first
    assert inbound.message_id == "<CAJ8k2n+Fq3d9x7Wm1pQz=vR5tY0uB6hN4eL2sK8gC1aD3fE7oA@mail.gmail.com>"
    assert inbound.in_reply_to == "<HD-7KQ2M9.01HMZ3Q8W6K4T2V9X7B5N3P1R0@helpdesk.local>"
    assert mail.message_ids(inbound) == [
        "<HD-7KQ2M9.01HMZ3Q8W6K4T2V9X7B5N3P1R0@helpdesk.local>",
        "<HD-7KQ2M9.01HMZ2A3B4C5D6E7F8G9H0J1K2@helpdesk.local>",
    ]
    assert mail.ticket_id_from_message_id(inbound.in_reply_to, "helpdesk.local") == "HD-7KQ2M9"
    # ...the reply token rides on the plus address
    assert mail.reply_token_from(inbound.to, "support@helpdesk.local") == "hF3k9Q_zT2vLx8mN4pR7sW1yB6cD0eG5jK-uA9oIq2E"
    # ...and the date is UTC
    assert inbound.date.isoformat() == "2024-01-15T09:41:06+00:00"


def test_recipients_and_reply_to_are_listed():
    inbound = mail.parse_inbound((CORPUS / "outlook_reply_original_message.eml").read_bytes())
    assert [m.address for m in inbound.to] == ["support@helpdesk.local"]
    assert [(m.name, m.address) for m in inbound.cc] == [("Accounts Payable", "ap@contoso.com")]

    form = mail.parse_inbound((CORPUS / "html_only_contact_form.eml").read_bytes())
    assert [m.address for m in form.reply_to] == ["lena.fischer@web.de"]


def test_full_text_keeps_what_trimming_removed():
    inbound = mail.parse_inbound((CORPUS / "outlook_reply_original_message.eml").read_bytes())
    assert "We have received your request" in inbound.full_text
    assert inbound.text in inbound.full_text.replace("\r", "")


def test_inline_image_is_an_attachment_with_its_content_id():
    inbound = mail.parse_inbound((CORPUS / "outlook_inline_image.eml").read_bytes())
    (image,) = inbound.attachments
    assert image.inline and image.content_id == "image001.png@01DA4B2C.3E5F6A70"
    assert image.size > 0 and image.skipped is None
