"""The X API v2 client shared by X intake (``intake.x``) and the X reply sender (``workers.outbound.x_sender``).

tweepy's v2 ``Client`` does the calls; ``XApi`` translates its errors, reads the
``x-rate-limit-*`` headers of every answer and checks that an answer has the
documented ``data``/``includes``/``meta`` shape. It never sleeps: tweepy's
``wait_on_rate_limit`` would hold the calling thread for up to 15 minutes, so
it stays off and a 429 raises ``XRateLimited`` with the time X accepts calls
again; the caller schedules its next call (intake) or a delayed retry (sending).

tweepy sets no HTTP timeout and hardcodes ``https://api.twitter.com``: its
requests session is replaced by ``RoutedSession``, which adds the timeout to
every call and sends it to the configured API URL.

Ids: tweet and DM event ids are snowflakes whose top bits are the moment they
were made (``snowflake_time``, ``snowflake_at``); ``item_id`` reads one from an
item the API returned, or says it is malformed.

This module imports nothing of the intake adapter, so the sender can use it alone.

Errors raised here (the adapter turns them into health records and a later poll;
the sender into a delayed retry or a refusal):

    XError                 base of everything raised here
    ├── XUnavailable       network error, timeout, 5xx or an answer that is not the documented JSON: the outcome is unknown; try again later
    ├── XRateLimited       429: carries ``reset_at`` (epoch seconds), when X accepts calls again
    └── XRefused           any other 4xx: the same call will fail again (credentials, access level, bad request)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import requests
import tweepy

from config.errors import SettingsError
from config.settings import Settings, XSettings
from intake.errors import XRateLimited, XRefused, XUnavailable

TWEEPY_HOST = "https://api.twitter.com"  # what tweepy.Client puts in front of every route
MAX_PAGES = 100
RATE_LIMIT_FALLBACK_SECONDS = 60.0  # a 429 without x-rate-limit-reset: try again after this
TWITTER_EPOCH_MS = 1288834974657


# -- errors ------------------------------------------------------------------------------
# -- the account and the client ---------------------------------------------------------
@dataclass(frozen=True)
class XAccount:
    """The helpdesk's X account and the credentials to act as it."""

    account_id: str
    bearer_token: str | None
    consumer_key: str | None
    consumer_secret: str | None
    access_token: str | None
    access_token_secret: str | None
    api_url: str = TWEEPY_HOST
    timeout: float = 15.0
    poll_seconds: float = 60.0

    @property
    def user_context(self) -> bool:
        """OAuth 1.0a user context: needed for DMs and for posting."""
        return all((self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret))

    @classmethod
    def from_group(cls, x: XSettings) -> "XAccount":
        """The account of ``x``; SettingsError naming what is missing when it cannot read mentions."""
        missing = x.missing_for_intake()
        if missing:
            raise SettingsError(f"X intake needs {' and '.join(missing)}")
        return cls(
            account_id=x.account_id or "",
            bearer_token=x.bearer_token,
            consumer_key=x.consumer_key,
            consumer_secret=x.consumer_secret,
            access_token=x.access_token,
            access_token_secret=x.access_token_secret,
            api_url=x.api_url,
            timeout=float(x.timeout_seconds),
            poll_seconds=float(x.poll_seconds),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> "XAccount":
        """``from_group`` for callers holding the whole settings."""
        return cls.from_group(settings.x)


class RoutedSession(requests.Session):
    """The requests session under tweepy.Client: sends its calls to ``api_url`` and gives each a timeout.

    tweepy builds every URL from ``https://api.twitter.com`` and passes no timeout;
    OAuth 1.0a signing happens when the request is prepared, after the rewrite,
    so signatures cover the URL actually called.
    """

    def __init__(self, api_url: str, timeout: float) -> None:
        super().__init__()
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if url.startswith(TWEEPY_HOST):
            url = self.api_url + url[len(TWEEPY_HOST):]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


def make_client(account: XAccount) -> tweepy.Client:
    """A v2 client that answers with raw responses (so the rate-limit headers can be read) and never sleeps."""
    client = tweepy.Client(
        bearer_token=account.bearer_token, consumer_key=account.consumer_key, consumer_secret=account.consumer_secret,
        access_token=account.access_token, access_token_secret=account.access_token_secret,
        return_type=requests.Response, wait_on_rate_limit=False,
    )
    client.session.close()
    client.session = RoutedSession(account.api_url, account.timeout)
    return client


@dataclass(frozen=True)
class RateLimit:
    """The ``x-rate-limit-*`` headers of one answer."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None

    @classmethod
    def from_headers(cls, headers: Any) -> "RateLimit":
        def number(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        reset = number("x-rate-limit-reset")
        return cls(number("x-rate-limit-limit"), number("x-rate-limit-remaining"), float(reset) if reset is not None else None)

    @property
    def exhausted(self) -> bool:
        return self.remaining == 0 and self.reset_at is not None


@dataclass(frozen=True)
class Page:
    """One answer of the v2 API: ``data``, ``includes``, ``meta`` as documented, and its rate-limit headers."""

    data: Any
    includes: dict[str, Any]
    meta: dict[str, Any]
    rate: RateLimit

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        return {str(u["id"]): u for u in self.includes.get("users", []) if isinstance(u, dict) and "id" in u}

    @property
    def items(self) -> list[Any]:
        """``data`` as a list (one object for single-item endpoints); each item still to be checked."""
        return self.data if isinstance(self.data, list) else [] if self.data is None else [self.data]


def _page(method: str, body: Any, rate: RateLimit) -> Page:
    """The documented shape or XUnavailable: ``data`` a list (or one object), ``includes`` and ``meta`` objects."""
    if not isinstance(body, dict):
        raise XUnavailable(f"{method}: the answer is not a JSON object")
    data, includes, meta = body.get("data"), body.get("includes") or {}, body.get("meta") or {}
    if not isinstance(includes, dict) or not isinstance(meta, dict) or not isinstance(data, (list, dict, type(None))):
        raise XUnavailable(f"{method}: the answer does not have the documented data/includes/meta shape")
    if not isinstance(includes.get("users", []), list):
        includes = {**includes, "users": []}
    return Page(data, includes, meta, rate)


class XApi:
    """tweepy.Client calls with errors translated and rate limits remembered per method; never sleeps."""

    def __init__(self, account: XAccount, client: tweepy.Client | None = None, clock: Callable[[], float] = time.time) -> None:
        self.account = account
        self.client = client or make_client(account)
        self.clock = clock
        self.rates: dict[str, RateLimit] = {}

    def call(self, method: str, **params: Any) -> Page:
        try:
            response = getattr(self.client, method)(**params)
        except tweepy.TooManyRequests as exc:  # the headers, not ``exc.reset_time``: that attribute is new in tweepy 4.17
            rate = self.rates[method] = RateLimit.from_headers(exc.response.headers)
            reset = rate.reset_at if rate.reset_at is not None else self.clock() + RATE_LIMIT_FALLBACK_SECONDS
            raise XRateLimited(method, float(reset)) from exc
        except tweepy.TwitterServerError as exc:
            raise XUnavailable(f"{method}: HTTP {exc.response.status_code}") from exc
        except tweepy.HTTPException as exc:
            status = exc.response.status_code
            detail = "; ".join(exc.api_messages) or exc.response.reason or ""
            raise XRefused(f"{method}: HTTP {status} {detail}".strip(), status, tuple(exc.api_codes)) from exc
        except (requests.RequestException, OSError) as exc:  # connection refused or reset, timeout: the outcome is unknown
            raise XUnavailable(f"{method}: {type(exc).__name__}: {exc}") from exc
        rate = RateLimit.from_headers(response.headers)
        self.rates[method] = rate
        try:
            body = response.json() if response.content else {}
        except ValueError as exc:
            raise XUnavailable(f"{method}: the answer is not JSON") from exc
        return _page(method, body, rate)

    def pages(self, method: str, **params: Any) -> Iterator[Page]:
        """Every page of a paginated endpoint, following ``meta.next_token``."""
        token = None
        for _ in range(MAX_PAGES):
            page = self.call(method, pagination_token=token, **params)
            yield page
            token = page.meta.get("next_token")
            if not token:
                return
        raise XUnavailable(f"{method}: more than {MAX_PAGES} pages")

    def close(self) -> None:
        self.client.session.close()


# -- ids and times of what the API returns ---------------------------------------------------
def snowflake_time(item_id: int | str) -> datetime:
    """When an X id (tweet, DM event) was made: its top bits are milliseconds since X's epoch."""
    return datetime.fromtimestamp(((int(item_id) >> 22) + TWITTER_EPOCH_MS) / 1000, timezone.utc)


def snowflake_at(moment: float) -> int:
    """The smallest X id made at ``moment`` (epoch seconds): every item made later has a larger id."""
    return max(0, int(moment * 1000) - TWITTER_EPOCH_MS) << 22


def item_id(item: Any) -> int | None:
    """The numeric id of a tweet or DM event, or None when the item is malformed."""
    if not isinstance(item, dict):
        return None
    value = item.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).isdigit() or len(str(value)) > 20:
        return None
    return int(value)


def created_time(item: dict[str, Any]) -> datetime:
    """When a tweet or DM event was made: its ``created_at``, or else what its id says."""
    value = item.get("created_at")
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
        except ValueError:
            pass
    return snowflake_time(item["id"])
