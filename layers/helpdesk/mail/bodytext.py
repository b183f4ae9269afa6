"""A message body as readable text: format=flowed joined, HTML converted, quoted history and
signatures trimmed off what the customer wrote."""

from __future__ import annotations

import re
from html.parser import HTMLParser

BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\ufeff]")


def unflow(text: str, *, delsp: bool) -> str:
    """RFC 3676 format=flowed: a line ending in a space continues on the next one."""
    out: list[str] = []
    joining = False
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        content = content[1:] if content.startswith(" ") else content  # space-stuffing
        if joining and out and depth == out[-1][0]:
            out[-1] = (depth, out[-1][1] + content)
        else:
            out.append((depth, content))
        joining = content.endswith(" ") and content != "-- "
        if joining and delsp:
            out[-1] = (depth, out[-1][1][:-1])
    return "\n".join((">" * d + (" " if d else "") + c) for d, c in out)


# --- HTML to text -------------------------------------------------------------------------------

_BLOCK = {"address", "article", "aside", "caption", "dd", "details", "div", "dl", "dt", "fieldset",
          "figcaption", "figure", "footer", "form", "header", "main", "nav", "section", "summary",
          "tbody", "tfoot", "thead", "tr", "center"}
_PARAGRAPH = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "pre", "hr"}
_SKIP = {"script", "style", "head", "title", "noscript", "template", "xml"}
_QUOTE_IN, _QUOTE_OUT = "\x02", "\x03"  # blockquote markers, turned into "> " prefixes at the end
_QUOTE_PREFIX_MAX = 5  # deeper quotes get no longer prefixes (a nesting bomb stays linear)


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.pre = 0
        self.link: tuple[str, int] | None = None  # the open <a>: its href and where its text starts

    def _tail(self) -> str:
        """The last two characters written ("\\n\\n" at the start, so nothing leads with blanks)."""
        tail = ""
        for piece in reversed(self.out):
            tail = piece[-2:] + tail
            if len(tail) >= 2:
                return tail[-2:]
        return ("\n\n" + tail)[-2:]

    def _newline(self, count: int = 1) -> None:
        tail = self._tail()
        have = 2 if tail == "\n\n" else (1 if tail.endswith("\n") else 0)
        if count > have:
            self.out.append("\n" * (count - have))

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "body":
            self.skip = 0
        elif tag == "br":
            self.out.append("\n")
        elif tag == "blockquote":
            self._newline()
            self.out.append(_QUOTE_IN + "\n")
        elif tag == "li":
            self._newline()
            self.out.append("- ")
        elif tag in ("td", "th") and not self._tail().endswith("\n"):
            self.out.append(" ")
        elif tag == "a":
            self._close_link()  # links do not nest: a new one ends the open one, as in browsers
            self.link = (dict(attrs).get("href") or "", len(self.out))
        if tag == "pre":
            self.pre += 1
        if tag in _PARAGRAPH:
            self._newline(2)
        elif tag in _BLOCK:
            self._newline()

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in ("br", "hr", "img"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "blockquote":
            self._newline()
            self.out.append(_QUOTE_OUT + "\n")
        elif tag == "a":
            self._close_link()
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in _PARAGRAPH:
            self._newline(2)
        elif tag in _BLOCK or tag == "li":
            self._newline()

    def _close_link(self) -> None:
        if self.link is None:
            return
        (href, start), self.link = self.link, None
        label = " ".join("".join(self.out[start:]).split())
        if re.match(r"(?i)https?://|ftp://", href) and label and _bare_url(href) not in _bare_url(label):
            self.out.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        data = BODY_CONTROL.sub("", data)
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
            if data.startswith(" ") and (not self.out or self._tail()[-1:] in (" ", "\n", "")):
                data = data[1:]
        if data:
            self.out.append(data)

    def text(self) -> str:
        lines, depth = [], 0
        for line in "".join(self.out).split("\n"):
            if line in (_QUOTE_IN, _QUOTE_OUT):
                depth = max(0, depth + (1 if line == _QUOTE_IN else -1))
                continue
            line = line.rstrip()
            line = line[1:] if line.startswith(" ") and not line.startswith("  ") else line
            lines.append("> " * min(depth, _QUOTE_PREFIX_MAX) + line if line else "")
        return tidy(lines)


def _bare_url(url: str) -> str:
    return re.sub(r"(?i)^(?:[a-z]+://)?(?:www\.)?", "", url.strip()).rstrip("/").lower()


def html_to_text(html: str) -> str:
    """Readable text from HTML: blocks on their own lines, links as ``text (url)``, blockquotes as
    ``> `` quotes (so the quoted-history trimming works the same for HTML), scripts and styles dropped."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; keep what was read
        pass
    return parser.text()


# --- quoted history and signatures --------------------------------------------------------------

_ATTRIBUTION = re.compile(
    r"(?:On\s.+\s(?:wrote|writes)"                      # Gmail, Apple Mail, Thunderbird, Outlook Mac
    r"|Am\s.+\sschrieb.*"                                 # de
    r"|Le\s.+\sa\s+écrit"                                 # fr
    r"|El\s.+\sescribió"                                  # es
    r"|Il\s.+\sha\s+scritto"                              # it
    r"|Em\s.+\sescreveu"                                  # pt
    r"|Op\s.+\sschreef.*"                                 # nl
    r"|Den\s.+\sskrev.*"                                  # sv, da, no
    r"|W\sdniu\s.+\snapisał(?:\(a\))?"                    # pl
    r"|.+\s(?:пишет|написал(?:\(а\)|а)?)"                 # ru
    r"|\d{4}年\d{1,2}月\d{1,2}日.+"                        # ja (Gmail: date, name <address>:)
    r"|.+(?:さんは書きました|のメール|写道|寫道))"           # ja, zh
    r"\s?[:：]", re.IGNORECASE)
_ORIGINAL = re.compile(
    r"\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original"
    r"|Messaggio originale|Oorspronkelijk bericht|Originalmeddelande|Original meddelelse"
    r"|Opprinnelig melding|Mensagem original|Исходное сообщение|Wiadomość oryginalna"
    r"|Původní zpráva|Alkuperäinen viesti|元のメッセージ|原始邮件)\s*-{2,}\s*", re.IGNORECASE)
_FORWARD = re.compile(
    r"\s*(?:-{2,}\s*(?:Forwarded message|Weitergeleitete Nachricht|Message transféré|Mensaje reenviado"
    r"|Messaggio inoltrato|Doorgestuurd bericht|Mensagem encaminhada|Пересылаемое сообщение"
    r"|Videresendt melding|Vidarebefordrat meddelande|転送されたメッセージ)\s*-{2,}"
    r"|Begin forwarded message:|Anfang der weitergeleiteten Nachricht:|Début du message réexpédié\s?:)\s*",
    re.IGNORECASE)
_HEADER_FROM = re.compile(r"\s*\*?(?:From|Von|De|Da|Van|Från|Fra|Od|От|Lähettäjä|Feladó|差出人|发件人|寄件者)"
                          r"\s*\*?\s*[:：]", re.IGNORECASE)
_HEADER_SENT = re.compile(r"\s*\*?(?:Sent|Date|Gesendet|Datum|Envoyé|Enviado(?: el)?|Inviato|Data|Verzonden"
                          r"|Skickat|Sendt|Wysłano|Отправлено|Дата|Lähetetty|Elküldve|送信日時|日付|发送时间"
                          r"|發送時間)\s*\*?\s*[:：]", re.IGNORECASE)
_SEPARATOR = re.compile(r"\s*[_\-=*]{5,}\s*")
_MOBILE_SIGNATURE = re.compile(
    r"(?:Sent from (?:my )?\S.{0,40}|Sent with \S.{0,30}|Get Outlook for \S.{0,20}|Von meinem \S.{0,30} gesendet"
    r"|Gesendet von \S.{0,30}|Envoyé de mon \S.{0,30}|Envoyé depuis \S.{0,30}|Enviado desde mi \S.{0,30}"
    r"|Enviado do meu \S.{0,30}|Inviato da(?:l mio)? \S.{0,30}|Verstuurd vanaf mijn \S.{0,30}"
    r"|Skickat från min \S.{0,30}|Отправлено с \S.{0,30}|\S{1,20}から送信)", re.IGNORECASE)
FORWARD_SUBJECT = re.compile(r"\s*(?:fwd?|wg|tr|rv|enc|doorst|vs|vl|pd|转发|轉寄|転送)\s*[:：]", re.IGNORECASE)
_CID_PLACEHOLDER = re.compile(r"\[cid:[^\]]*\]")


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _attribution(lines: list[str], i: int) -> int:
    """How many lines (1-3; Gmail wraps long ones) form an "On ... wrote:" line at ``i``, else 0."""
    for span in (1, 2, 3):
        chunk = lines[i:i + span]
        if len(chunk) < span or (span > 1 and not chunk[-1].strip()) or _quoted(chunk[-1]):
            return 0
        joined = " ".join(s.strip() for s in chunk)
        if len(joined) > 300:
            return 0
        if joined.endswith((":", "：")) and _ATTRIBUTION.fullmatch(joined):
            # "On Monday the app wrote:" may be the customer's own words: take it for an attribution
            # only with an address in it or quoted lines after it (then it goes with them, date or not).
            following = [s for s in lines[i + span:i + span + 6] if s.strip()][:3]
            if re.search(r"<[^<>\s]+@[^<>\s]+>", joined) or any(_quoted(s) for s in following):
                return span
    return 0


def _header_block(lines: list[str], i: int) -> bool:
    """Outlook's "From: ... Sent: ..." block that starts a quoted or forwarded message."""
    if not _HEADER_FROM.match(lines[i]):
        return False
    following = [s for s in lines[i + 1:i + 9] if s.strip()][:4]
    return any(_HEADER_SENT.match(s) for s in following)


def _quote_start(lines: list[str], limit: int) -> tuple[int, int, str] | None:
    """(index, span, kind) of the first line that starts quoted history."""
    for i in range(limit):
        line = lines[i]
        if not line.strip() or _quoted(line):
            continue
        if _ORIGINAL.fullmatch(line):
            return i, 1, "original"
        if _header_block(lines, i):
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            return (j, 1, "header") if j >= 0 and _SEPARATOR.fullmatch(lines[j]) else (i, 1, "header")
        span = _attribution(lines, i)
        if span:
            return i, span, "attribution"
    return None


def _forward_start(lines: list[str], forwarded: bool) -> int | None:
    for i, line in enumerate(lines):
        if _FORWARD.fullmatch(line) or (forwarded and (_ORIGINAL.fullmatch(line) or _header_block(lines, i))):
            return i
    return None


def _trim_signature(lines: list[str]) -> list[str]:
    """Cut at "-- " (or a bare "--" shortly before the end) or at a "Sent from my iPhone" line."""
    after = sum(1 for s in lines if s.strip())  # lines with content after the current one
    for i, line in enumerate(lines):
        after -= bool(line.strip())
        if line == "-- " or (line.strip() == "--" and 0 < after <= 15):
            return lines[:i]
        if after <= 2 and _MOBILE_SIGNATURE.fullmatch(re.sub(r"\s*\(https?://\S+\)$", "", line.strip())):
            return lines[:i]
    return lines


def tidy(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        line = _CID_PLACEHOLDER.sub("", line).rstrip()
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n")


def trim_reply(text: str, *, forwarded: bool = False) -> str:
    """What the customer wrote: quoted history ("On ... wrote:", Outlook's "Original Message" and
    "From: ... Sent:" blocks, ">" lines) and the signature removed. A forwarded message is kept
    (it is what the customer wants us to read); ``forwarded`` (a "Fwd:" subject) makes an Outlook
    header block count as the start of one. Never returns "" when there was text."""
    lines = text.replace("\r\n", "\n").split("\n")
    forward = _forward_start(lines, forwarded)
    quote = _quote_start(lines, len(lines) if forward is None else forward)
    if quote is not None:
        head, tail = lines[:quote[0]], []
    elif forward is not None:
        head, tail = lines[:forward], lines[forward:]
    else:
        head, tail = lines, []
    head = _trim_signature([s for s in head if not _quoted(s)])
    result = tidy(head + tail)
    if not result and quote is not None and quote[2] == "attribution":
        # Bottom-posted: the answer follows the quoted history.
        rest = [s for s in lines[quote[0] + quote[1]:] if not _quoted(s)]
        result = trim_reply("\n".join(rest), forwarded=forwarded)
    return result or tidy(lines)
