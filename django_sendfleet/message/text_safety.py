"""What text the API's fields may carry, and what a header value (subject, names, addresses)
may not: checked before a message costs a request.

The API's text fields refuse NUL and lone surrogates. A header value must stay on one line: a
line break would let whoever wrote the value add headers or recipients downstream (header
injection). "Line break" means every character ``str.splitlines()`` splits on, not only CR and
LF: the Unicode separators (U+2028, U+2029, U+0085) and the ASCII ones Python also treats as
line boundaries. Other control characters (C0 but the tab, DEL, and the C1 range U+0080 to
U+009F) are refused in a header value too: terminals and mail clients act on them (ESC starts a
terminal escape sequence) and no subject or name needs one.
"""

from __future__ import annotations

import re

from ..exceptions import SendFleetInvalidMessage

#: Every character ``str.splitlines()`` breaks a line at.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
# One character class: a single linear scan, nothing to backtrack.
_LINE_BREAK = re.compile("[" + re.escape(LINE_BREAKS) + "]")
#: Control characters a header value may not hold besides the line breaks (NUL has its own
#: message, below): C0 but the tab (folding whitespace), DEL, and C1.
_CONTROL = re.compile("[\x01-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f]")


def refuse_unsafe_header_text(text: str, field: str) -> None:
    """Raise ``SendFleetInvalidMessage`` for a line break, another control character, a NUL
    or a lone surrogate."""
    found = _LINE_BREAK.search(text)
    if found:
        raise SendFleetInvalidMessage(
            f"{field}: line breaks (here U+{ord(found.group()):04X}) are not allowed in a "
            "header value."
        )
    found = _CONTROL.search(text)
    if found:
        raise SendFleetInvalidMessage(
            f"{field}: control characters (here U+{ord(found.group()):04X}) are not allowed in "
            "a header value."
        )
    refuse_unsafe_text(text, field)


def refuse_unsafe_text(text: str, field: str) -> None:
    """Raise ``SendFleetInvalidMessage`` for what the API's text fields refuse: NUL, surrogates."""
    if "\x00" in text:
        raise SendFleetInvalidMessage(f"{field}: NUL characters are not allowed.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SendFleetInvalidMessage(
            f"{field}: lone surrogate characters are not allowed."
        ) from None
