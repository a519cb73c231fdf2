"""The Teams app package: manifest.json plus the two icons, zipped for upload."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyBboxPatch

MANIFEST_VERSION = "1.22"
SCHEMA = f"https://developer.microsoft.com/json-schemas/teams/v{MANIFEST_VERSION}/MicrosoftTeams.schema.json"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
ACCENT = "#1D3557"


def _icon(size: int, *, outline: bool) -> bytes:
    """A raised hand in a circle: 192x192 in colour, or 32x32 white on transparent."""
    fig = plt.figure(figsize=(size / 100, size / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    ink = "white"
    if not outline:
        ax.add_patch(FancyBboxPatch((0, 0), 1, 1, boxstyle="round,pad=0,rounding_size=0.18", color=ACCENT))
    else:
        ax.add_patch(Circle((0.5, 0.5), 0.44, fill=False, lw=max(1.0, size / 16), color=ink))
    ax.add_patch(FancyBboxPatch((0.36, 0.22), 0.28, 0.3, boxstyle="round,pad=0.02,rounding_size=0.08", color=ink))
    for i, h in enumerate((0.28, 0.34, 0.31, 0.25)):
        ax.add_patch(FancyBboxPatch((0.37 + i * 0.07, 0.45), 0.045, h, boxstyle="round,pad=0.005", color=ink))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, transparent=outline)
    plt.close(fig)
    return buf.getvalue()


MESSAGE_ACTION = "escalateMessage"  # bot.teams.message_action.COMMAND_ID


def manifest(app_id: str, *, developer: str, website: str, version: str = "1.0.0") -> dict[str, Any]:
    if not GUID.match(app_id or ""):
        raise ValueError("TEAMS_APP_ID must be the bot's Microsoft App ID, a GUID")
    site = website.rstrip("/")
    own = [
        {"title": "escalate", "description": "Ask a senior for help: opens the escalation form"},
        {"title": "queue", "description": "What is waiting for a senior, with a Claim button on each"},
        {"title": "mine", "description": "Your open escalations"},
        {"title": "stats", "description": "This week so far (stats NAME: one queue's)"},
        {"title": "help", "description": "What the bot does and how to set it up"},
    ]
    setup = [
        {"title": "setup", "description": "Leads: make this channel the escalation channel"},
        {"title": "setup leads", "description": "Leads: send the weekly report and alerts here"},
        {"title": "setup queue", "description": "Leads: setup queue NAME makes this a queue's channel"},
    ]
    return {
        "$schema": SCHEMA,
        "manifestVersion": MANIFEST_VERSION,
        "version": version,
        "id": app_id,
        "developer": {
            "name": developer,
            "websiteUrl": f"{site}/",
            "privacyUrl": f"{site}/privacy",
            "termsOfUseUrl": f"{site}/terms",
        },
        "name": {"short": "Escalation Bot", "full": "Escalation Bot: structured, claimable handoffs"},
        "description": {
            "short": "Turn 'can someone help?' into a claimable, measured handoff.",
            "full": (
                "Juniors message the bot 'escalate' and fill in what is wrong, what they tried and for whom. "
                "The card goes to the team's escalation channel; seniors press Claim and exactly one wins. "
                "The requester hears who picked it up; leads get a weekly report."
            ),
        },
        "icons": {"color": "color.png", "outline": "outline.png"},
        "accentColor": ACCENT,
        "bots": [
            {
                "botId": app_id,
                "scopes": ["personal", "team"],
                "supportsFiles": False,
                "isNotificationOnly": False,
                "commandLists": [
                    {"scopes": ["personal"], "commands": own},
                    {"scopes": ["team"], "commands": [*own[:2], *setup]},
                ],
            }
        ],
        "composeExtensions": [
            {
                "botId": app_id,
                "commands": [
                    {
                        "id": MESSAGE_ACTION,
                        "type": "action",
                        "title": "Escalate this message",
                        "description": "Ask a senior for help with this message; it goes on the card with its link",
                        "context": ["message"],
                        "fetchTask": True,
                    }
                ],
            }
        ],
        "permissions": ["identity", "messageTeamMembers"],
        "validDomains": [],
    }


def build_package(app_id: str, *, developer: str, website: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest(app_id, developer=developer, website=website), indent=2))
        z.writestr("color.png", _icon(192, outline=False))
        z.writestr("outline.png", _icon(32, outline=True))
    return buf.getvalue()
