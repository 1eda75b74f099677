"""`branchbot bridge dingtalk`: serve the Bot API on BRIDGE_HOST:BRIDGE_PORT for the bot
(`TELEGRAM_API_URL=http://127.0.0.1:8082`, beside `branchbot run`) and talk to DingTalk in
Stream mode. A wrong AppKey/AppSecret or an unreachable DingTalk stops it with one line."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import aiohttp

from bridge.dingtalk.openapi import DingTalkApi, DingTalkError
from config.logs import setup_logging
from config.settings import Settings, SettingsError, get_settings
from storage.db import make_engine, make_sessionmaker


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bridge", help="serve the bot to another messenger through a local Bot API")
    bsub = p.add_subparsers(dest="bridge_cmd", required=True)
    d = bsub.add_parser("dingtalk", help="DingTalk (钉钉), Stream mode")
    d.add_argument("--check", action="store_true", help="check the AppKey/AppSecret and DingTalk, then exit")
    d.set_defaults(func=_dingtalk)


def _dingtalk(args: argparse.Namespace) -> int:
    settings = get_settings()
    token = settings.require_token()
    if not settings.dingtalk_app_key or not settings.dingtalk_app_secret:
        raise SettingsError("DINGTALK_APP_KEY", "missing (and DINGTALK_APP_SECRET): the app's credentials")
    setup_logging(settings.log_level)
    return asyncio.run(serve(settings, token, check_only=args.check))


def make_api(settings: Settings) -> DingTalkApi:
    # The SDK (imported by bridge.dingtalk.relay) reads its endpoint once, when imported: set
    # it first, from the settings.
    os.environ["DINGTALK_OPENAPI_ENDPOINT"] = settings.dingtalk_openapi_url
    return DingTalkApi(
        settings.dingtalk_app_key,
        settings.dingtalk_app_secret,
        robot_code=settings.dingtalk_robot_code or None,
        endpoint=settings.dingtalk_openapi_url,
        oapi=settings.dingtalk_oapi_url,
    )


async def check(settings: Settings) -> str | None:
    """None when DingTalk gives this app a token; else the one line that says why not."""
    api = make_api(settings)
    try:
        await api.token()
    except DingTalkError as e:
        return f"DingTalk refused DINGTALK_APP_KEY/DINGTALK_APP_SECRET ({e.code}: {e.message})"
    except (aiohttp.ClientError, OSError, TimeoutError) as e:
        return f"cannot reach DingTalk at {settings.dingtalk_openapi_url} ({type(e).__name__}: {e})"
    finally:
        await api.close()
    return None


async def serve(settings: Settings, bot_token: str, *, check_only: bool = False) -> int:
    problem = await check(settings)
    if problem is not None:
        print(f"branchbot bridge dingtalk: {problem}", file=sys.stderr)
        return 2
    if check_only:
        print("branchbot bridge dingtalk: DingTalk answers and accepts the app's credentials")
        return 0
    api = make_api(settings)
    from bridge.dingtalk.relay import DingTalkBridge  # after make_api: the SDK reads the endpoint

    # The bridge keeps its people, unconfirmed frames and the cards and messages DingTalk shows
    # in the bot's database (the same DATABASE_URL as `branchbot run`; `branchbot db upgrade`
    # makes its tables); the bot's changes not yet passed on too, except on SQLite, where they
    # are in a file of the bridge's own next to it (bridge/dingtalk/outgoing.py).
    engine = make_engine(settings.database_url)
    bridge = DingTalkBridge(
        api,
        make_sessionmaker(engine),
        bot_token=bot_token,
        bot_username=settings.bot_username,
        host=settings.bridge_host,
        port=settings.bridge_port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with bridge:
            print(
                f"branchbot bridge dingtalk: Bot API at {bridge.base_url} (TELEGRAM_API_URL for the bot)",
                flush=True,
            )
            await stop.wait()
    finally:
        await engine.dispose()
    return 0
