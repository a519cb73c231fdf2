"""Slack messages as readable terminal text, the way a person would see them."""

from __future__ import annotations

import html
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


def adaptive_to_text(card: dict[str, Any], width: int = 76) -> str:
    """A Teams Adaptive Card as readable terminal text: its text, facts, inputs and buttons."""
    lines: list[str] = []

    def walk(items: list[Any]) -> None:
        for el in items:
            if not isinstance(el, dict):
                continue
            kind = el.get("type")
            if kind == "TextBlock":
                lines.append(textwrap.fill(str(el.get("text") or ""), width))
            elif kind == "RichTextBlock":
                said = "".join(str(r.get("text") or "") for r in el.get("inlines", []) if isinstance(r, dict))
                lines.extend(textwrap.fill(part, width) for part in said.split("\n"))
            elif kind == "FactSet":
                lines.extend(f"{f.get('title')}: {f.get('value')}" for f in el.get("facts", []))
            elif kind == "Image":
                lines.append(f"[image: {el.get('altText') or 'picture'}]")
            elif kind == "Container":
                lines.append("┄" * (width - 2))
                walk(el.get("items", []))
            elif kind == "ActionSet":
                lines.append("   ".join(f"[ {a.get('title')} ]" for a in el.get("actions", [])))
            elif str(kind).startswith("Input."):
                lines.append(f"{el.get('label') or el.get('id')}: [{el.get('value') or '…'}]")

    walk(card.get("body", []))
    if card.get("actions"):
        lines.append("   ".join(f"[ {a.get('title')} ]" for a in card["actions"]))
    return "\n".join(lines)


def teams_text_to_text(text: str) -> str:
    """A Teams text message as it reads on screen: markdown's backslash escapes and HTML entities
    (which the bot adds so typed text can't format or link) shown as the characters."""
    return html.unescape(re.sub(r"\\([\\`*_~\[\]()#!|{}])", r"\1", text))
