"""Readable plain text from an HTML body.

SendFleet requires a non-blank plain-text ``message`` even when ``html`` is given. Django
developers often send HTML only (``html_message=`` with an empty body), so the backend derives
the text part: paragraphs and line breaks kept, links shown with their target, scripts, styles
and the head dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: Sent when an HTML body has no text at all (an image only, say): the API refuses a blank one.
HTML_ONLY_FALLBACK = "This message has HTML content only; open it in an HTML-capable mail reader."

_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "fieldset"}
    | {"figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header"}
    | {"hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul"}
)
_SKIPPED_TAGS = frozenset({"head", "script", "style", "template", "title"})


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0
        self._link_targets: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
            if tag == "li":
                self.parts.append("- ")
        elif tag == "a":
            self._link_targets.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
        elif tag == "a" and self._link_targets:
            href = self._link_targets.pop()
            if href and not href.startswith(("#", "javascript:", "mailto:")):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = []
    for line in "".join(extractor.parts).splitlines():
        lines.append(re.sub(r"[ \t\f\v\xa0]+", " ", line).strip())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return text or HTML_ONLY_FALLBACK
