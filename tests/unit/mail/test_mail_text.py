"""Body text: charsets, HTML to text, and trimming quoted history and signatures."""

import pytest

from helpdesk import mail


def _plain(body: bytes, charset: str | None, cte: str = "8bit", extra: str = "") -> bytes:
    ctype = "text/plain" + (f"; charset={charset}" if charset else "") + extra
    return (b"From: a@example.com\nSubject: s\nContent-Type: " + ctype.encode()
            + b"\nContent-Transfer-Encoding: " + cte.encode() + b"\n\n" + body)


# --- charsets -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("charset", "text"), [
    ("iso-8859-1", "Grüße, Ångström"),
    ("iso-8859-15", "Preis: 10 €"),
    ("windows-1252", "“quoted” – €5"),
    ("windows-1251", "Привет, мир"),
    ("koi8-r", "Привет, мир"),
    ("shift_jis", "日本語のテキスト"),
    ("euc-jp", "日本語のテキスト"),
    ("iso-2022-jp", "日本語のテキスト"),
    ("gb2312", "中文邮件"),
    ("big5", "中文郵件"),
    ("euc-kr", "한국어 메일"),
    ("utf-8", "Ünïcödé ✓"),
])
def test_every_declared_charset_is_decoded(charset, text):
    encoded = text.encode({"shift_jis": "cp932", "iso-2022-jp": "iso2022_jp"}.get(charset, charset))
    inbound = mail.parse_inbound(_plain(encoded, charset))
    assert inbound.text == text
    assert inbound.defects == ()


@pytest.mark.parametrize("cte", ["base64", "quoted-printable"])
def test_transfer_encodings_are_decoded(cte):
    import base64
    import quopri
    body = "Schöne Grüße – ça marche.\n".encode()
    encoded = base64.encodebytes(body) if cte == "base64" else quopri.encodestring(body)
    assert mail.parse_inbound(_plain(encoded, "utf-8", cte)).text == "Schöne Grüße – ça marche."


def test_utf8_declared_but_windows_1252_sent_is_decoded_leniently():
    inbound = mail.parse_inbound(_plain("café “ok”".encode("cp1252"), "utf-8"))
    assert inbound.text == "café “ok”"
    assert any("not valid utf-8: decoded as cp1252" in d for d in inbound.defects)


def test_utf8_with_a_few_broken_bytes_keeps_the_good_characters():
    inbound = mail.parse_inbound(_plain("Grüße ".encode() + b"\xff" + " Straße".encode(), "utf-8"))
    assert inbound.text == "Grüße \ufffd Straße"


def test_latin1_declared_but_utf8_sent_is_read_as_utf8():
    inbound = mail.parse_inbound(_plain("naïve café".encode(), "iso-8859-1"))
    assert inbound.text == "naïve café"
    assert any("content is UTF-8" in d for d in inbound.defects)


@pytest.mark.parametrize("charset", ["x-nonsense", "utf-99", "base64", "rot13", "\"\"", "unknown-8bit"])
def test_an_unknown_or_non_text_charset_never_crashes(charset):
    inbound = mail.parse_inbound(_plain("Müller".encode("latin-1"), charset))
    assert inbound.text == "Müller"


def test_shift_jis_declared_but_invalid_bytes_are_replaced_not_raised():
    inbound = mail.parse_inbound(_plain("ログイン".encode("cp932") + b"\xff\xfe", "shift_jis"))
    assert inbound.text.startswith("ログイン")


@pytest.mark.parametrize(("header", "decoded"), [
    ("=?utf-8?B?w6nDqQ==?=", "éé"),
    ("=?ISO-8859-1?Q?Andr=E9?= Pirard", "André Pirard"),
    ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # whitespace between encoded words goes
    ("=?utf-8?q?a?= plain =?utf-8?q?b?=", "a plain b"),
    ("=?UTF-8?B?5pel?=\n =?UTF-8?B?5pys?=", "日本"),
    ("=?UTF-8?B?5g==?= =?UTF-8?B?l6XmnKw=?=", "日本"),  # a character split across two words: e6 | 97 a5
    ("=?utf-8*en?Q?Hello?=", "Hello"),  # RFC 2231 language suffix
    ("=?utf-8?B?not base64?=", "=?utf-8?B?not base64?="),  # not an encoded word at all: kept as is
    ("=?x-unknown?Q?M=FCller?=", "Müller"),
])
def test_encoded_words(header, decoded):
    assert " ".join(mail.decode_words(header).split()) == decoded


def test_raw_8bit_utf8_and_latin1_headers_are_decoded():
    raw = "From: Jörg <j@example.de>\nSubject: Straße\n\nx\n".encode()
    inbound = mail.parse_inbound(raw)
    assert (inbound.sender.name, inbound.subject) == ("Jörg", "Straße")
    raw = "From: Jörg <j@example.de>\nSubject: Straße\n\nx\n".encode("latin-1")
    assert mail.parse_inbound(raw).subject == "Straße"


def test_format_flowed_lines_are_joined():
    body = b"This is a long \r\nparagraph that was \r\nwrapped.\r\n\r\n>> quoted \r\n>> more\r\n"
    inbound = mail.parse_inbound(_plain(body, "utf-8", extra="; format=flowed"))
    assert inbound.full_text.startswith("This is a long paragraph that was wrapped.")
    assert ">> quoted more" in inbound.full_text


def test_format_flowed_delsp_removes_the_inserted_space():
    body = b"super\xc2\xadcali \r\nfragilistic\r\n"
    inbound = mail.parse_inbound(_plain(body, "utf-8", extra="; format=flowed; delsp=yes"))
    assert inbound.text == "super\xadcalifragilistic"


# --- HTML -----------------------------------------------------------------------------------------

def test_html_blocks_links_lists_and_entities():
    html = ("<html><head><title>t</title><style>p{color:red}</style></head><body>"
            "<h1>Title</h1><p>One &amp; two&nbsp;&lt;three&gt; &#8364;5 &eacute;</p>"
            "<div>Line 1<br>Line 2</div><ul><li>first</li><li>second</li></ul>"
            "<p>See <a href='https://docs.example.com/x'>the docs</a>, "
            "<a href='https://example.com'>https://example.com</a> and <a href='mailto:a@b.c'>mail us</a>.</p>"
            "<script>var x = '<p>no</p>';</script><table><tr><td>A</td><td>B</td></tr><tr><td>C</td></tr></table>"
            "</body></html>")
    assert mail.html_to_text(html) == (
        "Title\n\nOne & two <three> €5 é\n\nLine 1\nLine 2\n\n- first\n- second\n\n"
        "See the docs (https://docs.example.com/x), https://example.com and mail us.\n\nA B\nC")


def test_html_blockquotes_become_quote_markers():
    assert mail.html_to_text("<p>Top</p><blockquote><p>Quoted</p><blockquote>Deeper</blockquote></blockquote>") \
        == "Top\n\n> Quoted\n\n> > Deeper"


def test_html_pre_keeps_its_lines():
    text = mail.html_to_text("<p>Log:</p><pre>line one\n  indented two\n</pre><p>end</p>")
    assert "line one\n  indented two" in text


def test_broken_html_still_gives_text():
    assert mail.html_to_text("<div><p>Unclosed <b>bold <i>mess</div></td></table>tail &bogus; <") \
        .startswith("Unclosed bold mess")


def test_html_only_mail_gives_text_and_plain_is_preferred_over_html():
    html_only = (b"From: a@example.com\nSubject: s\nContent-Type: text/html; charset=utf-8\n\n"
                 b"<p>Hello <b>there</b></p>")
    assert mail.parse_inbound(html_only).text == "Hello there"
    both = (b"From: a@example.com\nSubject: s\nContent-Type: multipart/alternative; boundary=b\n\n"
            b"--b\nContent-Type: text/html\n\n<p>from html</p>\n--b\nContent-Type: text/plain\n\nfrom plain\n--b--\n")
    assert mail.parse_inbound(both).text == "from plain"


# --- quoted history -------------------------------------------------------------------------------

ANSWER = "The new version fixed it, thank you."


@pytest.mark.parametrize("attribution", [
    "On Mon, Jan 15, 2024 at 10:00 AM Acme Support <support@helpdesk.local> wrote:",
    "On 15 Jan 2024, at 10:00, Acme Support <support@helpdesk.local> wrote:",
    "On 15/01/2024 10:00, Acme Support wrote:",
    "On 1/15/24, 10:00 AM, \"Acme Support\" <support@helpdesk.local> wrote:",
    "Am Mo., 15. Jan. 2024 um 10:00 Uhr schrieb Acme Support <support@helpdesk.local>:",
    "Am 15.01.2024 um 10:00 schrieb Acme Support:",
    "Le lun. 15 janv. 2024 à 10:00, Acme Support <support@helpdesk.local> a écrit :",
    "El lun, 15 ene 2024 a las 10:00, Acme Support (<support@helpdesk.local>) escribió:",
    "Il giorno lun 15 gen 2024 alle ore 10:00 Acme Support <support@helpdesk.local> ha scritto:",
    "Em seg., 15 de jan. de 2024 às 10:00, Acme Support <support@helpdesk.local> escreveu:",
    "Op ma 15 jan 2024 om 10:00 schreef Acme Support <support@helpdesk.local>:",
    "Den 15 jan. 2024 kl. 10:00 skrev Acme Support <support@helpdesk.local>:",
    "W dniu 15.01.2024 o 10:00, Acme Support pisze napisał(a):",
    "15.01.2024, 10:00, Acme Support <support@helpdesk.local> пишет:",
    "2024年1月15日(月) 10:00 Acme Support <support@helpdesk.local>:",
    "在 2024年1月15日 10:00，Acme Support <support@helpdesk.local> 写道：",
    "On Mon, 15 Jan 2024 at 10:00, Acme Support <\nsupport@helpdesk.local> wrote:",  # Gmail wraps
])
def test_reply_attributions_in_many_languages_cut_the_history(attribution):
    text = f"{ANSWER}\n\n{attribution}\n\n> Please update to version 4.2.\n> Acme Support\n"
    assert mail.trim_reply(text) == ANSWER


@pytest.mark.parametrize("attribution", [
    "On Tue, Helpdesk wrote:",  # no date, no address: only the quote under it tells
    "On Tuesday, Acme Support wrote:",
    "Am Dienstag schrieb Acme Support:",
    "Le mar., Acme Support a écrit :",
    "El mar, Acme Support escribió:",
    "Il mar, Acme Support ha scritto:",
    "Em ter., Acme Support escreveu:",
    "Op di, Acme Support schreef:",
    "Den tis, Acme Support skrev:",
    "Acme Support пишет:",
    "Acme Support さんは書きました:",
])
def test_an_attribution_without_date_or_address_goes_with_the_quote_under_it(attribution):
    for text in (f"{ANSWER}\n\n{attribution}\n> Please update to version 4.2.\n",  # top-posted
                 f"{attribution}\n> Please update to version 4.2.\n\n{ANSWER}\n"):  # bottom-posted
        assert mail.trim_reply(text) == ANSWER


def test_an_attribution_answered_inline_keeps_only_the_answers():
    text = "On Tue, Helpdesk wrote:\n> Which version?\n4.2.1\n> Which OS?\nDebian 12\n"
    assert mail.trim_reply(text) == "4.2.1\nDebian 12"


@pytest.mark.parametrize("history", [
    "-----Original Message-----\nFrom: Acme Support\nSent: Monday\nTo: me\nSubject: x\n\nPlease update.",
    "-----Ursprüngliche Nachricht-----\nVon: Acme Support\nGesendet: Montag\n\nBitte aktualisieren.",
    "________________________________\nFrom: Acme Support <support@helpdesk.local>\n"
    "Sent: Monday, January 15, 2024 10:00\n"
    "To: Me\nSubject: RE: x\n\nPlease update.",
    "From: Acme Support <support@helpdesk.local>\nDate: Monday, 15 January 2024 at 10:00\nTo: Me\n\nPlease update.",
    "*From:* Acme Support <support@helpdesk.local>\n*Sent:* Monday, January 15, 2024 10:00\n\nPlease update.",
    "De : Acme Support <support@helpdesk.local>\nEnvoyé : lundi 15 janvier 2024 10:00\nÀ : Moi\n\n"
    "Veuillez mettre à jour.",
    "Von: Acme Support <support@helpdesk.local>\n\nGesendet: Montag, 15. Januar 2024 10:00\n\nBitte aktualisieren.",
])
def test_outlook_history_blocks_are_cut(history):
    assert mail.trim_reply(f"{ANSWER}\n\n{history}\n") == ANSWER


@pytest.mark.parametrize("signature", [
    "-- \nJane Doe\nACME Corp",
    "--\nJane Doe",
    "Sent from my iPhone",
    "Sent from my Galaxy",
    "Get Outlook for iOS",
    "Sent from Outlook for Android (https://aka.ms/AAb9ysg)",
    "Von meinem iPhone gesendet",
    "Envoyé de mon iPad",
    "Enviado desde mi iPhone",
    "iPhoneから送信",
])
def test_signatures_are_cut(signature):
    assert mail.trim_reply(f"{ANSWER}\n\n{signature}\n") == ANSWER


def test_words_that_only_look_like_quotes_stay():
    text = ("On Monday the app wrote: \"error 42\" and stopped.\n"
            "Sent from our Berlin office yesterday, the invoice never arrived.\n"
            "From: the start of the month, nothing worked.\nThanks")
    assert mail.trim_reply(text) == text


def test_interleaved_answers_keep_the_answers():
    text = "> Which version?\n4.2.1\n> Which OS?\nDebian 12\n"
    assert mail.trim_reply(text) == "4.2.1\nDebian 12"


def test_a_message_that_is_all_quote_is_kept_whole():
    text = "> only a quote\n> nothing else"
    assert mail.trim_reply(text) == text


def test_forwarded_content_is_kept_but_the_forwarders_signature_goes():
    text = ("FYI, see below.\n-- \nJane\n\n-------- Forwarded Message --------\nSubject: Outage\n"
            "Date: Mon, 15 Jan 2024\nFrom: Monitor <noc@example.com>\n\nThe API is down.\n")
    trimmed = mail.trim_reply(text)
    assert trimmed.startswith("FYI, see below.\n-------- Forwarded Message --------")
    assert "The API is down." in trimmed and "Jane" not in trimmed


def test_an_outlook_forward_keeps_the_forwarded_message():
    text = ("Please look at this.\n\nFrom: Billing <billing@acme.example>\nSent: Sunday, January 21, 2024 06:00\n"
            "To: Li Wei\nSubject: Payment reminder\n\nYour invoice is overdue.\n")
    assert "Your invoice is overdue." in mail.trim_reply(text, forwarded=True)
    assert mail.trim_reply(text) == "Please look at this."


def test_a_reply_quoting_an_outlook_forward_cuts_at_the_first_history():
    text = ("Thanks!\n\nOn Mon, 15 Jan 2024 at 10:00, Support <support@helpdesk.local> wrote:\n"
            "> ---------- Forwarded message ---------\n> hi\n")
    assert mail.trim_reply(text) == "Thanks!"


def test_inline_text_parts_around_an_image_are_joined_in_order():
    # Given an Apple Mail message: text, an inline image, more text
    raw = (b"From: a@example.com\nSubject: s\nContent-Type: multipart/mixed; boundary=b\n\n"
           b"--b\nContent-Type: text/plain; charset=us-ascii\n\nBefore the picture.\n"
           b"--b\nContent-Type: image/jpeg; name=IMG_0001.jpg\nContent-Disposition: inline; filename=IMG_0001.jpg\n"
           b"Content-Transfer-Encoding: base64\n\n/9j/4AAQSkZJRg==\n"
           b"--b\nContent-Type: text/plain; charset=us-ascii\n\nAfter the picture.\n--b--\n")

    # When it is parsed
    inbound = mail.parse_inbound(raw)

    # Then both pieces of text are there, and the picture is an inline attachment
    assert inbound.text == "Before the picture.\n\nAfter the picture."
    assert [(a.filename, a.inline) for a in inbound.attachments] == [("IMG_0001.jpg", True)]
