"""The fake Slack's workspace state and the Web API methods the bot calls, answered as Slack
answers them: the same shapes and the same refusals (unknown channel, not in the channel, missing
message, a trigger used twice or too late, an upload never made). Scopes and rate limits are
checked before a method runs (`bot.sandbox.fake_slack`)."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from typing import Any

from bot.sandbox.slack_contract import RateLimits
from bot.sandbox.slack_state import (
    TRIGGER_LIFETIME,
    Channel,
    Install,
    Message,
    Reply,
    block_problems,
    maybe_json,
)


class SlackMethods:
    """State and handlers; the HTTP side lives in FakeSlack, which is one of these."""

    team_id: str
    team_domain: str
    bot_user_id: str
    port: int
    limits: RateLimits

    def _init_state(
        self,
        *,
        users: dict[str, str] | None,
        channels: dict[str, str] | None,
        private_channels: dict[str, str] | None,
        usergroups: dict[str, list[str]] | None,
    ) -> None:
        self.users: dict[str, str] = dict(users or {})
        self.channels: dict[str, Channel] = {}
        for cid, name in (channels or {}).items():
            self.add_channel(cid, name)
        for cid, name in (private_channels or {}).items():
            self.add_channel(cid, name, private=True)
        self.usergroups: dict[str, list[str]] = dict(usergroups or {})
        self.messages: list[Message] = []
        self._by_place: dict[tuple[str, str], Message] = {}  # (channel, ts): a long run finds in O(1)
        self.replies: list[Reply] = []
        self.views: list[dict[str, Any]] = []
        self.uploads: dict[str, dict[str, Any]] = {}  # file id -> {filename, length, data, ...}
        self.files: list[dict[str, Any]] = []  # files shared into channels
        self.used_triggers: set[str] = set()
        self.admins: set[str] = set()
        self.oauth_codes: dict[str, dict[str, Any]] = {}
        self.oauth_client: tuple[str, str] | None = None
        self._last_ts = 0
        self._team: str = ""  # the workspace of the call being answered
        self._install: Install | None = None

    # ---- the workspace ------------------------------------------------------------

    def add_channel(
        self, cid: str, name: str = "", *, private: bool = False, bot_member: bool = True, team: str | None = None
    ) -> Channel:
        channel = Channel(cid, name or cid.lower(), team or self.team_id, private=private, bot_member=bot_member)
        self.channels[cid] = channel
        return channel

    def _new_ts(self) -> str:
        # Like Slack's: the time of posting, unique within the workspace.
        micros = max(int(time.time() * 1_000_000), self._last_ts + 1)
        self._last_ts = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def say(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> Message:
        """A person writes in a channel (or a thread): something a message shortcut can point at.
        A channel nobody declared is one the bot was never invited to."""
        if channel not in self.channels:
            self.add_channel(channel, bot_member=False)
        msg = Message(channel=channel, ts=self._new_ts(), text=text, blocks=None, thread_ts=thread_ts, user=user)
        return self._keep(msg)

    def _keep(self, msg: Message) -> Message:
        self.messages.append(msg)
        self._by_place[(msg.channel, msg.ts)] = msg
        return msg

    def find(self, channel: str, ts: str) -> Message | None:
        return self._by_place.get((channel, ts))

    def _conversation(self, cid: str) -> tuple[Channel | None, str | None]:
        """The channel a call names (a DM counts, opened on demand), or the error Slack gives."""
        if cid[:1] in ("U", "W") or cid.startswith("D"):
            user = cid[1:] if cid.startswith("D") else cid
            return Channel("D" + user, "dm", self._team, private=True), None
        channel = self.channels.get(cid)
        if channel is None or channel.team != self._team:
            return None, "channel_not_found"
        return channel, None

    def _postable(self, cid: str) -> tuple[Channel | None, str | None]:
        channel, error = self._conversation(cid)
        if channel is None:
            return None, error
        if not channel.bot_member and not channel.id.startswith("D"):
            scopes = self._install.scopes if self._install is not None else frozenset()
            if channel.private or "chat:write.public" not in scopes:
                return None, "not_in_channel"
        return channel, None

    def _readable(self, cid: str) -> tuple[Channel | None, str | None]:
        channel, error = self._conversation(cid)
        if channel is None:
            return None, error
        if not channel.bot_member and not channel.id.startswith("D"):
            return None, "not_in_channel"
        return channel, None

    # ---- methods --------------------------------------------------------------------

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "chat.getPermalink": self._permalink,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "usergroups.users.list": self._usergroup_users,
            "conversations.open": self._conversations_open,
            "users.info": self._users_info,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "oauth.v2.access": self._oauth_access,
        }

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "team_id": self._team,
            "user": "escalation-bot",
            "user_id": self.bot_user_id,
            "bot_id": "B" + self.bot_user_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        text = args.get("text") or ""
        blocks = maybe_json(args.get("blocks"))
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        channel, error = self._postable(str(args["channel"]))
        if channel is None:
            return {"ok": False, "error": error}
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        if len(text) > 40_000:
            return {"ok": False, "error": "msg_too_long"}
        if block_problems(blocks):
            return {"ok": False, "error": "invalid_blocks", "errors": block_problems(blocks)}
        to_user = channel.id[1:] if channel.id.startswith("D") else None
        thread_ts = args.get("thread_ts")
        if thread_ts and not self.find(channel.id, str(thread_ts)):
            return {"ok": False, "error": "thread_not_found"}
        msg = Message(
            channel=channel.id,
            ts=self._new_ts(),
            text=text,
            blocks=blocks,
            thread_ts=str(thread_ts) if thread_ts else None,
            to_user=to_user,
            metadata=maybe_json(args.get("metadata")),
        )
        self._keep(msg)
        return {"ok": True, "channel": channel.id, "ts": msg.ts, "message": {"text": text, "ts": msg.ts}}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, error = self._postable(str(args.get("channel") or ""))
        if channel is None:
            return {"ok": False, "error": error}
        msg = self.find(channel.id, str(args.get("ts")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if msg.user is not None:
            return {"ok": False, "error": "cant_update_message"}  # someone else's message
        blocks = maybe_json(args.get("blocks"))
        if block_problems(blocks):
            return {"ok": False, "error": "invalid_blocks"}
        msg.edits.append({"text": msg.text, "blocks": msg.blocks, "at": time.monotonic()})  # replaced, and when
        if "text" in args:
            msg.text = args.get("text") or ""
        if "blocks" in args:
            msg.blocks = blocks or None  # the new blocks replace the old ones
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.text}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, error = self._postable(str(args.get("channel") or ""))
        if channel is None:
            return {"ok": False, "error": error}
        self.replies.append(
            Reply(
                user=str(args.get("user")),
                text=args.get("text") or "",
                response_type="ephemeral",
                replace_original=None,
                blocks=maybe_json(args.get("blocks")),
                at=time.monotonic(),
            )
        )
        return {"ok": True, "message_ts": self._new_ts()}

    def _permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel")), str(args.get("message_ts"))
        if self.find(channel, ts) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": channel, "permalink": self.permalink_of(channel, ts)}

    def permalink_of(self, channel: str, ts: str) -> str:
        """A message's link, in the form Slack's chat.getPermalink reference shows."""
        return f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = str(args.get("trigger_id") or "")
        parts = trigger.split(".")
        if len(parts) != 4 or parts[0] != "trig" or not parts[2].isdigit():
            return {"ok": False, "error": "invalid_trigger_id"}
        if trigger in self.used_triggers:
            return {"ok": False, "error": "exchanged_trigger_id"}
        if time.time() - int(parts[2]) / 1000 > TRIGGER_LIFETIME:
            return {"ok": False, "error": "expired_trigger_id"}
        view = dict(maybe_json(args.get("view")) or {})
        if len((view.get("title") or {}).get("text", "")) > 24 or block_problems(view.get("blocks")):
            return {"ok": False, "error": "invalid_arguments"}
        self.used_triggers.add(trigger)
        view["id"] = "V" + uuid.uuid4().hex[:10].upper()
        view["_user"] = parts[1]
        view["team_id"] = self._team
        self.views.append(view)
        return {"ok": True, "view": view}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = args.get("view_id")
        if not any(v.get("id") == view_id for v in self.views):
            return {"ok": False, "error": "not_found"}
        return {"ok": True, "view": maybe_json(args.get("view"))}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        view = dict(maybe_json(args.get("view")) or {})
        if view.get("type") != "home" or not args.get("user_id"):
            return {"ok": False, "error": "invalid_arguments"}
        if block_problems(view.get("blocks")) or len(view.get("blocks") or []) > 100:
            return {"ok": False, "error": "invalid_arguments"}
        view["_user"] = args.get("user_id")
        view["_home"] = True
        self.views.append(view)
        return {"ok": True, "view": view}

    def _listing(self, messages: list[Message], args: dict[str, Any]) -> dict[str, Any]:
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        with_meta = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        found = sorted((m for m in messages if oldest < float(m.ts) <= latest), key=lambda m: float(m.ts), reverse=True)
        start = int(args.get("cursor") or 0)
        limit = self.limits.history_limit(args.get("limit"))
        page = found[start : start + limit]
        out = []
        for m in page:
            entry: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
            if m.user:
                entry["user"] = m.user
            else:
                entry["bot_id"] = "B" + self.bot_user_id
            if m.thread_ts:
                entry["thread_ts"] = m.thread_ts
            if with_meta and m.metadata:
                entry["metadata"] = m.metadata
            if m.files:
                entry["subtype"], entry["files"] = "file_share", m.files
            out.append(entry)
        more = start + limit < len(found)
        return {
            "ok": True,
            "messages": out,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, error = self._readable(str(args.get("channel") or ""))
        if channel is None:
            return {"ok": False, "error": error}
        return self._listing([m for m in self.messages if m.channel == channel.id and not m.thread_ts], args)

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, error = self._readable(str(args.get("channel") or ""))
        if channel is None:
            return {"ok": False, "error": error}
        ts = str(args.get("ts"))
        if self.find(channel.id, ts) is None:
            return {"ok": False, "error": "thread_not_found"}
        # Like Slack: the thread's parent and its replies.
        return self._listing(
            [m for m in self.messages if m.channel == channel.id and (m.thread_ts == ts or m.ts == ts)], args
        )

    def _usergroup_users(self, args: dict[str, Any]) -> dict[str, Any]:
        group = str(args.get("usergroup"))
        if group not in self.usergroups:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": self.usergroups[group]}

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if len(users) != 1:
            return {"ok": False, "error": "users_list_not_supplied" if not users else "not_enough_users"}
        if users[0] == self.bot_user_id:
            return {"ok": False, "error": "cannot_dm_bot"}
        return {"ok": True, "channel": {"id": "D" + users[0]}}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        uid = str(args.get("user"))
        if uid not in self.users:
            return {"ok": False, "error": "user_not_found"}
        admin = uid in self.admins
        name = self.users[uid]
        return {
            "ok": True,
            "user": {"id": uid, "name": name, "real_name": name, "is_admin": admin, "is_owner": admin},
        }

    def _upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("filename") or not str(args.get("length") or "").isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        self.uploads[file_id] = {"filename": args["filename"], "length": int(args["length"]), "data": None}
        return {"ok": True, "upload_url": f"http://127.0.0.1:{self.port}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        files = maybe_json(args.get("files")) or []
        if args.get("channel_id"):
            channel, error = self._postable(str(args["channel_id"]))
            if channel is None:
                return {"ok": False, "error": error}
        shared = []
        for f in files:
            up = self.uploads.get(f.get("id"))
            if up is None or up["data"] is None or len(up["data"]) != up["length"]:
                return {"ok": False, "error": "file_upload_incomplete"}
            if up.get("shared"):
                return {"ok": False, "error": "file_upload_already_completed"}
            entry = {
                "id": f["id"],
                "title": f.get("title"),
                "filename": up["filename"],
                "data": up["data"],
                "channel": args.get("channel_id"),
                "thread_ts": args.get("thread_ts"),
                "initial_comment": args.get("initial_comment"),
            }
            self.files.append(entry)
            up["shared"] = True
            shared.append({"id": f["id"], "title": f.get("title"), "name": up["filename"]})
        if args.get("channel_id") and shared:
            # Sharing into a channel is a message there, as Slack shows it in the channel's history.
            self._keep(
                Message(
                    channel=str(args["channel_id"]),
                    ts=self._new_ts(),
                    text=str(args.get("initial_comment") or ""),
                    blocks=None,
                    thread_ts=str(args["thread_ts"]) if args.get("thread_ts") else None,
                    files=shared,
                )
            )
        return {"ok": True, "files": shared}

    # ---- installing into more workspaces (OAuth) --------------------------------------

    def grant(
        self,
        code: str,
        team_id: str,
        *,
        team_name: str = "",
        installer: str = "UINSTALLER",
        scopes: list[str] | None = None,
    ) -> str:
        """What Slack does when a workspace approves the install: a code for the redirect; returns the
        token it will carry. `scopes`: what the admin approved (default: what the app asks for)."""
        token = f"xoxb-{team_id.lower()}-{uuid.uuid4().hex[:12]}"
        self.oauth_codes[code] = {
            "team_id": team_id,
            "team_name": team_name or team_id,
            "bot_token": token,
            "installer": installer,
            "scopes": scopes,
        }
        return token

    def _oauth_access(self, args: dict[str, Any]) -> dict[str, Any]:
        basic = args.get("_basic") or ""
        try:
            client_id, client_secret = base64.b64decode(basic).decode().split(":", 1)
        except ValueError:
            client_id, client_secret = str(args.get("client_id")), str(args.get("client_secret"))
        if self.oauth_client is not None and (client_id, client_secret) != self.oauth_client:
            return {"ok": False, "error": "invalid_client_id"}
        grant = self.oauth_codes.pop(str(args.get("code")), None)
        if grant is None:
            return {"ok": False, "error": "invalid_code"}
        scopes = grant["scopes"] if grant["scopes"] is not None else self.default_scopes
        self.tokens[grant["bot_token"]] = Install(grant["team_id"], frozenset(scopes))
        return {
            "ok": True,
            "app_id": "A0ESCALATE",
            "authed_user": {"id": grant["installer"]},
            "scope": ",".join(scopes),
            "token_type": "bot",
            "access_token": grant["bot_token"],
            "bot_user_id": "UBOT" + grant["team_id"],
            "team": {"id": grant["team_id"], "name": grant["team_name"]},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    # provided by FakeSlack
    tokens: dict[str, Install]
    default_scopes: list[str]
