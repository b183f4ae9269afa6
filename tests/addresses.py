"""The one list of addresses every end is tested with: what the API, the email intake and the outbound
builder must accept (and how we store it), and what each must refuse (helpdesk.addresses)."""

# As written by a customer -> as stored and sent to.
DELIVERABLE = {
    "ann@example.com": "ann@example.com",
    "Ann.Lee@Example.COM": "ann.lee@example.com",
    "ann+billing@example.co.uk": "ann+billing@example.co.uk",
    "o'brien@example.ie": "o'brien@example.ie",
    "ann@bücher.de": "ann@xn--bcher-kva.de",  # an internationalised domain, in its IDNA form
    "ann@xn--bcher-kva.de": "ann@xn--bcher-kva.de",
    "ann@mail.sub.example.org": "ann@mail.sub.example.org",
}

# Addresses SES cannot send to (or that are not addresses at all).
UNDELIVERABLE = [
    "jörg@example.com",  # a non-ASCII local part: SES has no SMTPUTF8
    "ann@exa_mple.com",  # not a host name
    "a\x00b@example.com",  # a NUL
    "ann@example.com\r\nBcc: victim@example.org",  # header injection
    '"ann lee"@example.com',  # quoted local part
    "ann@[192.0.2.1]",  # an IP literal
    "ann@localhost",  # no dot
    "ann@helpdesk.local",  # a special-use domain
    "a..b@example.com",
    "ann@-example.com",
    "ann@example.com.",
    " ann@example.com",
    "x" * 65 + "@example.com",  # the local part is over 64 characters
    "ann",
    "",
]
