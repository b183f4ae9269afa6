"""Inbound mail: how fast the corpus parses, and the peak memory of a ~10 MB message whose
attachments are taken one at a time (twice as many at half the size must not cost more: memory
follows the message's size and the largest attachment, not the number of attachments)."""

import gc
import hashlib
import random
import time
import tracemalloc
from email.message import EmailMessage
from pathlib import Path

from helpdesk import mail

CORPUS = Path(__file__).parents[1] / "unit" / "mail" / "corpus"
SECONDS = 2.0
MB = 1_000_000
ATTACHMENT_BYTES = 7_400_000  # decoded; base64 and line breaks make a ~10 MB message of it


def parse_rate() -> float:
    messages = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    parsed, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < SECONDS:
        for raw in messages:
            try:
                mail.parse_inbound(raw)
            except mail.UnparseableMail:
                pass
        parsed += len(messages)
    return parsed / elapsed


def big_message(count: int) -> bytes:
    """A scanner's mail: a short text and ``count`` incompressible attachments."""
    rng = random.Random(count)
    msg = EmailMessage()
    msg["From"] = "Scanner <scanner@example.com>"
    msg["To"] = "support@helpdesk.local"
    msg["Subject"] = f"Scanned documents ({count})"
    msg.set_content("Please find the scanned documents attached.")
    msg.add_alternative("<p>Please find the scanned documents attached.</p>", subtype="html")
    for i in range(count):
        msg.add_attachment(rng.randbytes(ATTACHMENT_BYTES // count), maintype="application",
                           subtype="pdf", filename=f"scan-{i + 1}.pdf")
    return msg.as_bytes()


def peak_memory_mb(raw: bytes) -> float:
    """Peak allocated while parsing and handing each attachment on (the raw bytes, which the caller
    already holds, are not counted)."""
    gc.collect()
    tracemalloc.start()
    try:
        msg = mail.parse_message(raw)
        mail.parse_inbound(msg)  # lists the attachments: decodes each once, one at a time
        upload = hashlib.sha256()
        for attachment in mail.iter_attachments(msg):
            upload.update(attachment.content)  # stands in for the S3 upload
            del attachment
        return tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()


def run() -> list[tuple[str, float, str]]:
    few, many = big_message(4), big_message(8)
    return [
        ("mail_parse_rate", round(parse_rate(), 1), "msg/s"),
        ("mail_10mb_message_size", round(len(few) / MB, 2), "MB"),
        ("mail_10mb_peak_memory", round(peak_memory_mb(few), 1), "MB"),
        ("mail_10mb_peak_memory_2x_attachments", round(peak_memory_mb(many), 1), "MB"),
    ]
