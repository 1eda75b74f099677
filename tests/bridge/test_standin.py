"""The DingTalk stand-in against the real `dingtalk-stream` SDK: the SDK finds it through
DINGTALK_OPENAPI_ENDPOINT, opens the gateway connection, receives frames, acks them, and
reconnects when the stand-in drops the socket; the OpenAPI calls the SDK makes (access token,
cards) are answered as DingTalk answers them."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator

import dingtalk_stream
import pytest
from dingtalk_stream import AckMessage, CallbackHandler, CallbackMessage, ChatbotMessage, Credential
from dingtalk_stream.card_callback import CardCallbackMessage
from dingtalk_stream.card_instance import MarkdownButtonCardInstance

from bridge.dingtalk.standin import BOT_MESSAGE_TOPIC, CARD_CALLBACK_TOPIC, DingTalkStandIn, StandInError


class Recorder(CallbackHandler):
    """A handler that keeps what it got and acks it (the SDK sends the ack)."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[CallbackMessage] = []
        self.arrived = asyncio.Event()

    async def process(self, message: CallbackMessage) -> tuple[int, str]:
        self.got.append(message)
        self.arrived.set()
        return AckMessage.STATUS_OK, "OK"


async def run_client(
    st: DingTalkStandIn, handlers: dict[str, CallbackHandler], secret: str | None = None
) -> AsyncIterator[dingtalk_stream.DingTalkStreamClient]:
    client = dingtalk_stream.DingTalkStreamClient(Credential(st.app_key, secret or st.app_secret))
    # Tests need no minute-long back-off; the schedule itself is the SDK's.
    client.RECONNECT_BASE_DELAY_SECONDS = 0.05
    client.RECONNECT_JITTER_SECONDS = 0.05
    for topic, handler in handlers.items():
        client.register_callback_handler(topic, handler)
    task = asyncio.create_task(client.start())
    try:
        yield client
    finally:
        await client.stop()
        await asyncio.wait_for(task, timeout=5)


@pytest.fixture
async def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(
    standin: DingTalkStandIn, recorder: Recorder
) -> AsyncIterator[dingtalk_stream.DingTalkStreamClient]:
    async for c in run_client(standin, {BOT_MESSAGE_TOPIC: recorder, CARD_CALLBACK_TOPIC: recorder}):
        await standin.wait_for(lambda: standin.connected)
        yield c


def test_the_sdk_reads_the_standin_endpoint(standin: DingTalkStandIn) -> None:
    assert dingtalk_stream.utils.DINGTALK_OPENAPI_ENDPOINT == standin.endpoint
    assert (
        dingtalk_stream.DingTalkStreamClient.OPEN_CONNECTION_API
        == standin.endpoint + "/v1.0/gateway/connections/open"
    )


async def test_connect_subscribe_receive_a_message_and_ack_it(
    standin: DingTalkStandIn, client: dingtalk_stream.DingTalkStreamClient, recorder: Recorder
) -> None:
    assert standin.connections_opened == 1
    assert standin.calls[0] == ("POST", "/v1.0/gateway/connections/open")
    user = standin.add_user("张三")
    message_id = await standin.send_text(user, "/start ABC123")
    await standin.wait_for(lambda: not standin.pending())
    msg = ChatbotMessage.from_dict(recorder.got[0].data)
    assert (msg.text.content, msg.sender_staff_id, msg.sender_nick) == ("/start ABC123", user.user_id, "张三")
    assert msg.conversation_type == "1"
    assert recorder.got[0].headers.message_id == message_id
    ack = standin.acks[-1]
    assert ack["code"] == 200 and ack["headers"]["messageId"] == message_id


async def test_a_wrong_secret_never_connects(standin: DingTalkStandIn) -> None:
    async for _ in run_client(standin, {BOT_MESSAGE_TOPIC: Recorder()}, secret="wrong"):
        await standin.wait_for(lambda: len(standin.calls) >= 2)  # it keeps retrying
        assert standin.connections_opened == 0


async def test_system_ping_is_answered_and_the_connection_stays(
    standin: DingTalkStandIn, client: dingtalk_stream.DingTalkStreamClient
) -> None:
    await standin.system("ping", {"opaque": "x1"})
    ack = await standin.wait_for(
        lambda: next((a for a in standin.acks if a.get("data") == '{"opaque": "x1"}'), None)
    )
    assert ack["code"] == 200
    assert standin.connected and standin.connections_opened == 1


async def test_disconnect_makes_the_sdk_reconnect(
    standin: DingTalkStandIn, client: dingtalk_stream.DingTalkStreamClient
) -> None:
    await standin.system("disconnect")
    await standin.wait_for(lambda: standin.connections_opened == 2 and standin.connected)


async def test_after_the_stream_drops_a_message_sent_meanwhile_arrives_once(
    standin: DingTalkStandIn, client: dingtalk_stream.DingTalkStreamClient, recorder: Recorder
) -> None:
    user = standin.add_user("李四")
    await standin.drop_stream()
    assert not standin.connected
    message_id = await standin.send_text(user, "断线时发的")  # no socket now: it waits
    assert standin.pending() == [message_id]
    await standin.wait_for(lambda: standin.connections_opened == 2 and not standin.pending())
    texts = [ChatbotMessage.from_dict(m.data).text.content for m in recorder.got]
    assert texts == ["断线时发的"]


async def test_a_redelivered_frame_is_acked_again_without_calling_the_handler_twice(
    standin: DingTalkStandIn, client: dingtalk_stream.DingTalkStreamClient, recorder: Recorder
) -> None:
    user = standin.add_user("王五")
    message_id = await standin.send_text(user, "一次")
    await standin.wait_for(lambda: not standin.pending())
    await standin.redeliver(message_id)
    await standin.wait_for(
        lambda: sum(a["headers"].get("messageId") == message_id for a in standin.acks) == 2
    )
    assert len(recorder.got) == 1  # the SDK de-duplicates by messageId


async def test_the_sdk_sends_a_button_card_and_gets_the_press_back(
    standin: DingTalkStandIn, client: dingtalk_stream.DingTalkStreamClient, recorder: Recorder
) -> None:
    user = standin.add_user("赵六")
    await standin.send_text(user, "hi")
    await standin.wait_for(lambda: recorder.got)
    incoming = ChatbotMessage.from_dict(recorder.got[0].data)
    card = MarkdownButtonCardInstance(client, incoming)
    buttons = [{"text": "批准", "color": "blue", "id": "approve:17", "request": True}]
    # The SDK's card calls are blocking `requests` calls: off the loop, as the SDK itself does.
    await asyncio.to_thread(card.reply, "**申请** 2 小时", buttons)
    assert card.card_instance_id
    shown = standin.inbox(user)
    assert [c.out_track_id for c in shown] == [card.card_instance_id]
    assert standin.token_requests == 1
    with pytest.raises(StandInError):
        await standin.press(user, card.card_instance_id, "reject:17")
    await standin.press(user, card.card_instance_id, "approve:17")
    await standin.wait_for(lambda: len(recorder.got) == 2)
    press = CardCallbackMessage.from_dict(recorder.got[1].data)
    assert press.card_instance_id == card.card_instance_id and press.user_id == user.user_id
    assert press.content["cardPrivateData"]["actionIds"] == ["approve:17"]
    # An edit: the SDK updates the card in place.
    await asyncio.to_thread(card.update, "**申请** 已批准", [])
    assert standin.cards[card.card_instance_id].updates == 1
    assert "已批准" in standin.cards[card.card_instance_id].data["markdown"]


async def test_identical_content_to_one_person_twice_a_day_is_taken_but_never_shown(
    standin: DingTalkStandIn,
) -> None:
    import aiohttp

    user = standin.add_user("钱七")
    async with aiohttp.ClientSession() as http:
        token = await (
            await http.post(
                standin.endpoint + "/v1.0/oauth2/accessToken",
                json={"appKey": standin.app_key, "appSecret": standin.app_secret},
            )
        ).json()
        assert token["expireIn"] == 7200
        body = {
            "robotCode": standin.robot_code,
            "userIds": [user.user_id],
            "msgKey": "sampleMarkdown",
            "msgParam": json.dumps({"title": "通知", "text": "明天开会"}),
        }
        headers = {"x-acs-dingtalk-access-token": token["accessToken"]}
        for _ in range(2):
            r = await http.post(
                standin.endpoint + "/v1.0/robot/oToMessages/batchSend", json=body, headers=headers
            )
            assert r.status == 200 and (await r.json())["processQueryKey"]
        assert len(standin.inbox(user)) == 1
        assert [s.dropped for s in standin.inbox(user, include_dropped=True)] == [False, True]
        r = await http.post(standin.endpoint + "/v1.0/robot/oToMessages/batchSend", json=body)
        assert r.status == 401  # no token


async def test_media_upload_keeps_the_bytes_and_refuses_what_dingtalk_refuses(
    standin: DingTalkStandIn,
) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        token = (
            await (
                await http.post(
                    standin.endpoint + "/v1.0/oauth2/accessToken",
                    json={"appKey": standin.app_key, "appSecret": standin.app_secret},
                )
            ).json()
        )["accessToken"]
        form = aiohttp.FormData()
        form.add_field("type", "image")
        form.add_field("media", b"\x89PNG...", filename="a.png", content_type="image/png")
        got = await (
            await http.post(f"{standin.endpoint}/media/upload?access_token={token}", data=form)
        ).json()
        assert got["errcode"] == 0 and standin.media[got["media_id"]][2] == b"\x89PNG..."
        form = aiohttp.FormData()
        form.add_field("type", "voice")
        form.add_field(
            "media", io.BytesIO(b"x" * (2 * 1024 * 1024 + 1)), filename="a.mp3", content_type="audio/mpeg"
        )
        got = await (
            await http.post(f"{standin.endpoint}/media/upload?access_token={token}", data=form)
        ).json()
        assert got["errcode"] == 40006
