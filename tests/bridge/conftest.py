"""The DingTalk stand-in on a port chosen before the SDK is imported.

`dingtalk_stream` reads `DINGTALK_OPENAPI_ENDPOINT` once, when it is imported, so the port is
reserved and the variable set here, at collection, before any test module imports the SDK.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.dingtalk.standin import DingTalkStandIn


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STANDIN_PORT = _free_port()
os.environ["DINGTALK_OPENAPI_ENDPOINT"] = f"http://127.0.0.1:{STANDIN_PORT}"


@pytest.fixture
async def standin() -> AsyncIterator[DingTalkStandIn]:
    async with DingTalkStandIn(port=STANDIN_PORT) as st:
        yield st


@pytest.fixture(autouse=True)
def _no_outbox_of_an_earlier_test(db_url: str) -> None:
    """On SQLite the bridge keeps the bot's changes in a file next to the database
    (`<file>-dingtalk-outbox`, bridge/dingtalk/outgoing.py): each test starts without one."""
    prefix = "sqlite+aiosqlite:///"
    if db_url.startswith(prefix):
        outbox = Path(f"{db_url[len(prefix) :]}-dingtalk-outbox")
        for left in outbox.parent.glob(f"{outbox.name}*"):  # with its -wal and -shm
            left.unlink()
