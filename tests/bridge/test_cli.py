"""`branchbot bridge dingtalk --check`: a wrong key or an unreachable DingTalk in one line."""

from __future__ import annotations

import asyncio
import os

import pytest

from bot.cli import main
from bridge.cli import check
from bridge.dingtalk.standin import DingTalkStandIn
from config.settings import Settings, get_settings
from tests.bridge.conftest import _free_port


@pytest.fixture(autouse=True)
def _restore_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # check() sets DINGTALK_OPENAPI_ENDPOINT for the SDK; put it back after each test.
    monkeypatch.setenv("DINGTALK_OPENAPI_ENDPOINT", os.environ["DINGTALK_OPENAPI_ENDPOINT"])


def settings_for(endpoint: str, secret: str) -> Settings:
    return Settings(
        _env_file=None,
        bot_token="1:x",
        dingtalk_app_key="dingstandinkey",
        dingtalk_app_secret=secret,
        dingtalk_openapi_url=endpoint,
        dingtalk_oapi_url=endpoint,
    )


async def test_good_credentials_pass(standin: DingTalkStandIn) -> None:
    assert await check(settings_for(standin.endpoint, standin.app_secret)) is None


async def test_a_wrong_secret_is_one_line(standin: DingTalkStandIn) -> None:
    problem = await check(settings_for(standin.endpoint, "wrong"))
    assert problem is not None and "\n" not in problem
    assert problem.startswith(
        "DingTalk refused DINGTALK_APP_KEY/DINGTALK_APP_SECRET (invalidClientIdOrSecret"
    )


async def test_an_unreachable_dingtalk_is_one_line() -> None:
    endpoint = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    problem = await check(settings_for(endpoint, "x"))
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"cannot reach DingTalk at {endpoint} (ClientConnectorError")


@pytest.mark.parametrize(
    ("secret", "code", "says"),
    [
        ("standin-secret", 0, "DingTalk answers and accepts the app's credentials"),
        ("wrong", 2, "DingTalk refused DINGTALK_APP_KEY/DINGTALK_APP_SECRET (invalidClientIdOrSecret"),
    ],
)
async def test_branchbot_bridge_dingtalk_check_says_it_in_one_line(
    standin: DingTalkStandIn, monkeypatch: pytest.MonkeyPatch, capsys, secret: str, code: int, says: str
) -> None:
    for name, value in {
        "BOT_TOKEN": "1:x",
        "DINGTALK_APP_KEY": standin.app_key,
        "DINGTALK_APP_SECRET": secret,
        "DINGTALK_OPENAPI_URL": standin.endpoint,
        "DINGTALK_OAPI_URL": standin.endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        # The command runs its own event loop (asyncio.run): a thread of its own.
        got = await asyncio.to_thread(main, ["bridge", "dingtalk", "--check"])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    out = capsys.readouterr()
    line = (out.out if code == 0 else out.err).strip()
    assert got == code and "\n" not in line
    assert line.startswith(f"branchbot bridge dingtalk: {says}")
