"""User text in Teams *text* messages (not cards): shown exactly as typed.

Teams renders a bot's text message as markdown with some HTML, so a resolution note such as
`[Reset your password](https://evil.example)` or `<a href=…>` would become a forged link, and
`**` or `#` would restyle it. HTML's three special characters become entities and markdown's
punctuation is backslash-escaped, which markdown shows as the character itself. (Cards carry
typed text in TextRuns instead, which Teams never interprets.)
"""

from __future__ import annotations

import html
import re

_MARKDOWN = re.compile(r"([\\`*_~\[\]()#!|{}])")


def plain(text: str | None) -> str:
    return _MARKDOWN.sub(r"\\\1", html.escape(text or "", quote=False))
