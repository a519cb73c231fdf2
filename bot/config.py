"""Settings, from the environment and `.env` (pydantic-settings).

A wrong or missing setting stops start-up with one line that names it; the
CLI turns `ConfigError` into that line and exit status 2.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from storage.db import POSTGRES_POOL_SIZE, Database, url_problem

CommaList = Annotated[list[str], NoDecode]

GUID = _GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class ConfigError(Exception):
    """One line naming the setting that stops start-up."""


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,\s]+", value) if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True)

    database_url: str = "sqlite+aiosqlite:///escalation-bot.db"
    # PostgreSQL connections a replica may open, and keeps once opened: replicas x this must stay
    # under the server's max_connections (100 by default), with room for anything else.
    database_pool_size: int = Field(default=POSTGRES_POOL_SIZE, ge=1, le=200)
    # "pgbouncer": DATABASE_URL is PgBouncer in transaction pooling (no prepared statements kept).
    database_pooler: Literal["none", "pgbouncer"] = "none"
    # Where migrations run, when not through DATABASE_URL: PostgreSQL itself, behind a pooler.
    database_migration_url: str | None = None
    # `serve` upgrades the schema before it listens; off for stacks whose migrations are a step of
    # their own (then it refuses a schema it cannot serve). `serve --no-migrate` turns it off too.
    migrate_on_start: bool = True
    # Erase a closed escalation's free text this many days after it closed (numbers stay); off when
    # unset. A workspace admin may set their own in `/escalate config`.
    retention_days: int | None = Field(default=None, ge=1, le=36500)
    # Delete messages already delivered after this many days, so the outbox does not grow with history.
    outbox_keep_days: int = Field(default=7, ge=1, le=3650)
    # Where people reach the bot from a browser (https://escalations.example.com): the leads' page's
    # sign-in links start with it. Without it, `/escalate dashboard` says to set it.
    public_url: str | None = None
    # On SIGTERM: how long a replica finishes what it acknowledged before it hands the rest back.
    shutdown_grace_seconds: float = Field(default=10.0, gt=0, le=600)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_api_base_url: str = "https://slack.com/api/"
    slack_escalation_channel: str | None = None
    slack_leads_channel: str | None = None
    slack_senior_user_ids: CommaList = Field(default_factory=list)
    slack_senior_usergroup: str | None = None
    slack_lead_user_ids: CommaList = Field(default_factory=list)

    teams_app_id: str | None = None
    teams_app_password: SecretStr | None = None
    teams_tenant_id: str | None = None
    teams_senior_user_ids: CommaList = Field(default_factory=list)
    teams_lead_user_ids: CommaList = Field(default_factory=list)  # Entra ids who may ask for `stats`
    # Accept Teams requests without a Bot Framework token: local development only.
    teams_allow_anonymous: bool = False
    # Where Teams may tell the bot to send its answers (an activity's serviceUrl): the Bot Connector
    # hosts Microsoft documents for Teams (public cloud, GCC, GCC High, DoD). Anything else is refused.
    teams_service_urls: CommaList = Field(
        default_factory=lambda: [
            "https://smba.trafficmanager.net",
            "https://smba.infra.gcc.teams.microsoft.com",
            "https://smba.infra.gov.teams.microsoft.us",
            "https://smba.infra.dod.teams.microsoft.us",
        ]
    )
    # Microsoft's sign-in service (tokens the bot asks for, and the Entra keys incoming tokens are
    # checked with) and Bot Framework's signing keys. Other clouds, and sandboxes, point them elsewhere.
    teams_login_url: str = "https://login.microsoftonline.com"
    teams_bot_framework_keys_url: str = "https://login.botframework.com/v1/.well-known/keys"

    report_weekday: str = "monday"
    report_time: time = time(9, 0)
    timezone: str = "UTC"
    manual_baseline_minutes: int = Field(default=30, ge=1, le=24 * 60)
    reminder_minutes: int = Field(default=10, ge=1)
    lead_alert_minutes: int = Field(default=30, ge=1)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"

    # Delivery tuning; the defaults suit a real workspace.
    outbox_lease_seconds: float = Field(default=30.0, gt=0)
    outbox_max_attempts: int = Field(default=10, ge=1)
    outbox_backoff_cap_seconds: float = Field(default=600.0, gt=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    slack_api_timeout_seconds: float = Field(default=10.0, gt=0)
    scheduler_seconds: float = Field(default=20.0, gt=0)

    @field_validator(
        "slack_senior_user_ids",
        "slack_lead_user_ids",
        "teams_senior_user_ids",
        "teams_lead_user_ids",
        "teams_service_urls",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("database_url", "database_migration_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        problem = url_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("slack_api_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.match(r"https?://", value):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#@]+(/[^\s?#]*)?", value):
            raise ValueError("must be where the bot is reached, e.g. https://escalations.example.com")
        return value.rstrip("/") if value else value

    @field_validator("teams_tenant_id")
    @classmethod
    def _tenant(cls, value: str | None) -> str | None:
        if value is not None and not _GUID.fullmatch(value):
            raise ValueError("must be your Entra tenant id, a GUID (Azure portal: Microsoft Entra ID > Overview)")
        return value

    @field_validator("teams_service_urls")
    @classmethod
    def _service_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.fullmatch(r"https?://[^/\s@]+/?", url):
                raise ValueError(f"each must be a scheme and host (https://smba.trafficmanager.net), not {url[:60]!r}")
        return value

    @field_validator("teams_login_url", "teams_bot_framework_keys_url")
    @classmethod
    def _teams_url(cls, value: str) -> str:
        if not re.match(r"https?://", value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("report_weekday")
    @classmethod
    def _weekday(cls, value: str) -> str:
        v = value.strip().lower()
        for day in _WEEKDAYS:
            if day.startswith(v) and len(v) >= 3:
                return day
        raise ValueError("must be a weekday name, e.g. monday")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone, e.g. Europe/Berlin") from exc
        return value

    # ---- derived ----------------------------------------------------------

    def database(self, *, migrations: bool = False) -> Database:
        """The database handle these settings describe; with `migrations`, the one migrations run
        on (DATABASE_MIGRATION_URL, straight to PostgreSQL, when it is set)."""
        if migrations and self.database_migration_url:
            return Database(self.database_migration_url)
        if migrations and self.database_pooler != "none":
            # The migration lock is PostgreSQL's session lock: through a transaction pooler it would be
            # taken on one server session and released on another.
            raise ConfigError(
                "DATABASE_MIGRATION_URL: missing; behind a pooler, migrations run on PostgreSQL itself "
                "(or set MIGRATE_ON_START=false and migrate with a direct DATABASE_URL)"
            )
        return Database(self.database_url, pool_size=self.database_pool_size, pooler=self.database_pooler)

    @property
    def slack_enabled(self) -> bool:
        return self.slack_signing_secret is not None

    @property
    def slack_oauth_enabled(self) -> bool:
        """Multi-workspace install: each workspace's token comes from the OAuth flow."""
        return bool(self.slack_client_id and self.slack_client_secret)

    def secrets(self) -> list[str]:
        """Every secret value, so the log filter can scrub them."""
        out = []
        for v in (
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.slack_client_secret,
            self.teams_app_password,
        ):
            if v is not None and v.get_secret_value():
                out.append(v.get_secret_value())
        for url in (self.database_url, self.database_migration_url):
            password = make_url(url).password if url else None
            if password:
                out.append(str(password))
        return out

    def require_for_serve(self) -> None:
        if self.teams_app_id and not self.teams_tenant_id:
            raise ConfigError(
                "TEAMS_TENANT_ID: missing; set your Entra tenant id (a GUID): the bot serves that tenant only"
            )
        if self.teams_app_id and not self.teams_allow_anonymous and self.teams_app_password is None:
            raise ConfigError(
                "TEAMS_APP_PASSWORD: missing; set the bot's client secret (or TEAMS_ALLOW_ANONYMOUS=true locally)"
            )
        if not self.slack_enabled and not self.teams_app_id:
            raise ConfigError(
                "SLACK_SIGNING_SECRET: missing; set it (and SLACK_BOT_TOKEN, SLACK_ESCALATION_CHANNEL) in .env"
            )
        if bool(self.slack_client_id) != bool(self.slack_client_secret):
            missing = "SLACK_CLIENT_SECRET" if self.slack_client_id else "SLACK_CLIENT_ID"
            raise ConfigError(f"{missing}: missing; multi-workspace install needs both SLACK_CLIENT_ID and SECRET")
        if self.slack_enabled and not self.slack_oauth_enabled:
            if self.slack_bot_token is None:
                raise ConfigError(
                    "SLACK_BOT_TOKEN: missing; set the app's Bot User OAuth Token (xoxb-…) in .env, "
                    "or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET to install in many workspaces"
                )
            if not self.slack_escalation_channel:
                raise ConfigError(
                    "SLACK_ESCALATION_CHANNEL: missing; set the id of the channel cards go to (e.g. C0123456789)"
                )


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and .env; ConfigError with one line on any problem."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err.get("loc") else "setting"
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{name}: {msg}") from None
