"""Slack messages as readable terminal text, the way a person would see them."""

from __future__ import annotations

import re
import textwrap
import unicodedata
from typing import Any

_EMOJI = {
    ":red_circle:": "🔴",
    ":large_orange_circle:": "🟠",
    ":large_yellow_circle:": "🟡",
    ":white_circle:": "⚪",
    ":raised_hand:": "✋",
    ":white_check_mark:": "✅",
    ":hourglass_flowing_sand:": "⏳",
    ":leftwards_arrow_with_hook:": "↩",
    ":arrow_right:": "➡",
    ":no_entry_sign:": "🚫",
}


def mrkdwn_to_text(text: str, names: dict[str, str]) -> str:
    def mention(m: re.Match[str]) -> str:
        inner = m.group(1)
        if inner.startswith("@"):
            return "@" + names.get(inner[1:], inner[1:])
        if inner.startswith("#"):
            cid = inner[1:].split("|")[0]
            return "#" + names.get(cid, cid)
        if inner.startswith("!date^"):
            return inner.rsplit("|", 1)[-1]
        if inner.startswith("!subteam^"):
            return "@" + names.get(inner.split("^")[1].split("|")[0], "seniors")
        if inner.startswith("!"):
            return "@" + inner[1:]
        if "|" in inner:
            url, label = inner.split("|", 1)
            return f"{label} ({url})"
        return inner

    out = re.sub(r"<([^<>]+)>", mention, text)
    for code, emoji in _EMOJI.items():
        out = out.replace(code, emoji)
    out = re.sub(r"(?<![\w*])\*([^*\n]+)\*(?![\w*])", r"\1", out)
    out = re.sub(r"(?<![\w_])_([^_\n]+)_(?![\w_])", r"\1", out)
    return out.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def blocks_to_text(blocks: list[dict[str, Any]] | None, fallback: str, names: dict[str, str], width: int = 76) -> str:
    if not blocks:
        return "\n".join(textwrap.fill(line, width) or "" for line in mrkdwn_to_text(fallback, names).split("\n"))
    lines: list[str] = []
    for b in blocks:
        kind = b.get("type")
        if kind == "header":
            title = mrkdwn_to_text(b["text"]["text"], names)
            lines += [title, "─" * min(width, len(title) + 2)]
        elif kind == "section":
            for para in mrkdwn_to_text(b["text"]["text"], names).split("\n"):
                lines.append(textwrap.fill(para, width) if para else "")
            lines.append("")
        elif kind == "context":
            for el in b.get("elements", []):
                if "text" in el:
                    lines.append(textwrap.fill(mrkdwn_to_text(el["text"], names), width))
            lines.append("")
        elif kind == "divider":
            lines.append("┄" * (width - 2))
        elif kind == "actions":
            buttons = [f"[ {el['text']['text']} ]" for el in b.get("elements", []) if el.get("type") == "button"]
            lines.append("   ".join(buttons))
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _cells(text: str) -> int:
    """Terminal columns: wide characters (most emoji) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def boxed(title: str, body: str, width: int = 80) -> str:
    inner = width - 4
    top = f"┌─ {title} " + "─" * max(0, inner - len(title) - 1) + "┐"
    rows = []
    for line in body.split("\n"):
        for piece in textwrap.wrap(line, inner - 1) or [""]:
            rows.append(f"│ {piece}{' ' * max(0, inner - _cells(piece))} │")
    return "\n".join([top, *rows, "└" + "─" * (width - 2) + "┘"])
