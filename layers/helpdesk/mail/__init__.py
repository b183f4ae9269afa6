"""Inbound and outbound email as pure functions: raw MIME bytes in, plain values out.

SES stores each inbound message raw in S3; the intake function hands the bytes here and gets back
what a support agent needs (:func:`parse_inbound`). No I/O, no logging, no AWS: the standard
library, and ``helpdesk.addresses`` for who we may write to. One module per subject:

- :mod:`.inbound`: one message as an :class:`InboundMail` (sender, subject, text, attachments...),
  built on :mod:`.mime` (the lenient MIME structure), :mod:`.headers` and :mod:`.charsets`;
- :mod:`.bodytext`: HTML to text, quoted history and signatures trimmed;
- :mod:`.attachments`: the files, listed with safe names and decoded one at a time;
- :mod:`.signals`: whether a machine sent it (auto-replies, bounces, lists: never answered);
- :mod:`.threads`: which ticket it answers (references, reply tokens, our Message-IDs);
- :mod:`.outbound`: the emails we send.
"""

from helpdesk.mail.attachments import (
    FILENAME_MAX_BYTES,
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    Attachment,
    AttachmentInfo,
    iter_attachments,
    safe_filename,
)
from helpdesk.mail.bodytext import html_to_text, trim_reply
from helpdesk.mail.headers import Mailbox, decode_words
from helpdesk.mail.inbound import MAX_DEFECTS, MAX_TEXT_CHARS, InboundMail, UnparseableMail, parse_inbound
from helpdesk.mail.mime import parse_message
from helpdesk.mail.outbound import AUTO_GENERATED, AUTO_REPLIED, build_outbound
from helpdesk.mail.threads import (
    find_ticket_reference,
    message_ids,
    new_message_id,
    reply_address,
    reply_token_from,
    ticket_id_from_message_id,
)

__all__ = [
    "AUTO_GENERATED", "AUTO_REPLIED", "FILENAME_MAX_BYTES", "MAX_ATTACHMENTS", "MAX_ATTACHMENT_BYTES",
    "MAX_DEFECTS", "MAX_TEXT_CHARS", "Attachment", "AttachmentInfo", "InboundMail", "Mailbox",
    "UnparseableMail", "build_outbound", "decode_words", "find_ticket_reference", "html_to_text",
    "iter_attachments", "message_ids", "new_message_id", "parse_inbound", "parse_message",
    "reply_address", "reply_token_from", "safe_filename", "ticket_id_from_message_id", "trim_reply",
]
