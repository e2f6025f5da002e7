"""The X API client stands alone: the reply sender uses it without loading the intake adapter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from intake.x_api import XAccount, XApi, snowflake_at, snowflake_time

from intake.errors import XRateLimited
from tests.servers.x import ACCESS_TOKEN, ACCESS_TOKEN_SECRET, ACCOUNT_ID, ANA, BEARER_TOKEN, CONSUMER_KEY, CONSUMER_SECRET, XServer


def _loaded_after(statement: str) -> set[str]:
    """The ``intake.x*`` modules a fresh interpreter has loaded after ``statement``."""
    code = f"{statement}\nimport sys\nprint(' '.join(m for m in sys.modules if m.startswith('intake.x')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(result.stdout.split())


def test_the_reply_sender_does_not_load_the_intake_adapter() -> None:
    # When a fresh interpreter imports the X reply sender
    loaded = _loaded_after("import workers.outbound.x_sender")

    # Then the client is loaded and the adapter is not
    assert "intake.x_api" in loaded
    assert "intake.x" not in loaded


def test_the_client_loads_nothing_else_of_x_intake() -> None:
    # When a fresh interpreter imports the client
    loaded = _loaded_after("import intake.x_api")

    # Then it is the only X module loaded
    assert loaded == {"intake.x_api"}


def test_a_429_raises_with_the_reset_from_the_headers(x: XServer) -> None:
    # Given an API rate limited for the next 300 s
    x.fake.mention(ANA, "Is the 1.2 release out?")
    x.fake.inject("mentions", "ratelimit", value=300)
    api = XApi(XAccount(ACCOUNT_ID, BEARER_TOKEN, CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, ACCESS_TOKEN_SECRET,
                        api_url=x.url, timeout=2.0))

    # When the mentions are read, then X's refusal is a rate limit
    with pytest.raises(XRateLimited) as raised:
        api.call("get_users_mentions", id=ACCOUNT_ID)
    api.close()

    # And it carries the reset X announced, and the method's rate limit is remembered as spent
    assert raised.value.reset_at == api.rates["get_users_mentions"].reset_at
    assert api.rates["get_users_mentions"].remaining == 0


def test_an_id_made_at_a_moment_tells_that_moment() -> None:
    # Given the smallest X id made at a moment
    moment = 1_750_000_000.0

    # Then the id's own time is that moment (to the millisecond)
    assert snowflake_time(snowflake_at(moment)).timestamp() == moment
