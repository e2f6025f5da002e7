"""Posting to Slack exactly once, within Slack's rate limits.

Delivery semantics: ``post`` may be called again for the same key after a
crash or a lost response. Every message carries Slack *message metadata*
with its key, so a retry first looks in the channel's recent history for a
message with that key and returns it instead of posting again. The client is
built without slack_sdk's connection-error retry handler (which could post
twice); a rate-limit answer raises ``SlackRateLimited`` with Slack's
``Retry-After`` for the caller to turn into a delayed retry — no thread
sleeps. Permanent errors (``channel_not_found``, ``not_in_channel`` …) raise
``SlackRefused``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workers.errors import SlackRateLimited, SlackRefused, SlackUnavailable

if TYPE_CHECKING:  # slack_sdk is imported when a client is made: a worker without Slack never loads it (25 ms)
    from slack_sdk import WebClient

METADATA_EVENT = "helpdesk_post"
PERMANENT = {"channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "account_inactive", "token_revoked",
             "msg_too_long", "invalid_blocks", "no_text", "restricted_action", "missing_scope", "message_not_found",
             "cant_update_message", "edit_window_closed"}


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str
    found_existing: bool = False


def make_client(token: str, api_url: str, timeout: int = 10) -> WebClient:
    """A WebClient with a timeout and no automatic retries (we retry through the queue, idempotently)."""
    from slack_sdk import WebClient  # noqa: PLC0415

    return WebClient(token=token, base_url=api_url, timeout=timeout, retry_handlers=[])


class SlackPoster:
    def __init__(self, client: WebClient) -> None:
        self.client = client
        self._channel_ids: dict[str, str] = {}

    def post(self, key: str, channel: str, text: str, blocks: list[dict] | None = None, *,
             thread_ts: str | None = None, check_first: bool = False, since: float | None = None) -> Posted:
        """Post once per ``key``. With ``check_first`` (a retry) look for an earlier post of this key first."""
        if check_first:
            existing = self.find(key, channel, since, thread_ts=thread_ts)
            if existing is not None:
                return existing
        response = self._call(
            "chat_postMessage", channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, unfurl_links=False,
            metadata={"event_type": METADATA_EVENT, "event_payload": {"key": key}},
        )
        return Posted(response["channel"], response["ts"])

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None = None) -> None:
        """Replace a message in place (the same call twice leaves the same message)."""
        self._call("chat_update", channel=channel, ts=ts, text=text, blocks=blocks)

    def find(self, key: str, channel: str, since: float | None, *, thread_ts: str | None = None) -> Posted | None:
        """A message of ours with this key in the channel's recent history (or in the thread), if any."""
        channel_id = self.channel_id(channel)
        cursor = None
        for _ in range(5):  # up to 1,000 recent messages
            oldest = str(since - 60) if since else "0"
            if thread_ts:  # replies live in their thread, not in the channel's history
                response = self._call("conversations_replies", channel=channel_id, ts=thread_ts, oldest=oldest, limit=200,
                                      include_all_metadata=True, cursor=cursor)
            else:
                response = self._call("conversations_history", channel=channel_id, oldest=oldest, limit=200,
                                      include_all_metadata=True, cursor=cursor)
            for message in response.get("messages", []):
                metadata = message.get("metadata") or {}
                if metadata.get("event_type") == METADATA_EVENT and (metadata.get("event_payload") or {}).get("key") == key:
                    return Posted(channel_id, message["ts"], found_existing=True)
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    def channel_id(self, channel: str) -> str:
        """C0123… for "#name" (looked up once), unchanged for an id."""
        if not channel.startswith("#"):
            return channel
        if channel not in self._channel_ids:
            cursor = None
            for _ in range(20):
                response = self._call("conversations_list", limit=1000, cursor=cursor, exclude_archived=True,
                                      types="public_channel,private_channel")
                for entry in response.get("channels", []):
                    self._channel_ids[f"#{entry['name']}"] = entry["id"]
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if channel in self._channel_ids or not cursor:
                    break
        if channel not in self._channel_ids:
            raise SlackRefused(f"channel_not_found: {channel}")
        return self._channel_ids[channel]

    def user_info(self, user: str) -> dict[str, Any]:
        return self._call("users_info", user=user).get("user", {})

    def _call(self, method: str, **arguments: Any) -> dict[str, Any]:
        from slack_sdk.errors import SlackApiError, SlackClientError  # noqa: PLC0415 - loaded with the client already

        arguments = {k: v for k, v in arguments.items() if v is not None}
        try:
            return getattr(self.client, method)(**arguments).data  # type: ignore[no-any-return]
        except SlackApiError as exc:
            response = exc.response
            error = response.get("error", "") if response is not None else ""
            if response is not None and (response.status_code == 429 or error == "ratelimited"):
                raise SlackRateLimited(float(response.headers.get("Retry-After", response.headers.get("retry-after", 30)))) from exc
            if response is not None and response.status_code >= 500:
                raise SlackUnavailable(f"{method}: HTTP {response.status_code}") from exc
            if error in PERMANENT:
                raise SlackRefused(f"{method}: {error}") from exc
            raise SlackUnavailable(f"{method}: {error or exc}") from exc
        except (SlackClientError, OSError) as exc:  # connection refused, timeout, reset: the outcome is unknown
            raise SlackUnavailable(f"{method}: {type(exc).__name__}: {exc}") from exc
