"""The floor for bench/claim_storm.py: a bare Bolt app whose Claim handler only acks,
served the same way escalation-bot serves Slack (aiohttp, signature checks on)."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def build(secret: str, token: str, api: str, channel: str) -> web.Application:
    bolt = AsyncApp(signing_secret=secret, client=AsyncWebClient(token=token, base_url=api))

    @bolt.action("claim")
    async def claim(ack: AsyncAck) -> None:
        await ack()

    @bolt.view("escalate")
    async def submitted(ack: AsyncAck, body: dict, client: AsyncWebClient) -> None:
        # Ack, then post a fixed message (carrying the view id so the bench can time it).
        await ack()
        await client.chat_postMessage(channel=channel, text=f"received {body['view']['id']}")

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", healthz)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--api", required=True)
    parser.add_argument("--channel", default="C0ESCALATE")
    a = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    web.run_app(
        build(a.secret, a.token, a.api, a.channel),
        host="127.0.0.1",
        port=a.port,
        print=None,
        access_log=None,
        backlog=1024,
    )
