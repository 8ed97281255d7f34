"""Play Developer API client choice: our aiohttp REST client vs google-api-python-client in a
bounded thread pool, reading N subscriptions from the fake Play API with a response delay.

Both authenticate with a service account against the fake's token endpoint and parse the
same SubscriptionPurchaseV2 bodies; only the transport differs. 127.0.0.1 only, bounded.

    .venv/bin/python bench/google_play_client.py [--n 200] [--delay 0.05] [--threads 8]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import aiohttp
import google_auth_httplib2
import httplib2
from google.oauth2 import service_account
from googleapiclient.discovery import build

from receipts.google.play import AccessTokens, PlayClient
from simulators.fake_play import FakePlay
from simulators.google_signer import GoogleTestKeys
from simulators.play_purchases import subscription_purchase

PKG = "com.example.app"
SCOPE = "https://www.googleapis.com/auth/androidpublisher"


async def ours(fake: FakePlay, keys: GoogleTestKeys, tokens: list[str]) -> float:
    async with aiohttp.ClientSession() as session:
        access = AccessTokens.from_service_account_info(keys.service_account_info(fake.token_uri))
        client = PlayClient(session, access, root_url=fake.base_url)
        await client.get_subscription(PKG, tokens[0])  # token fetch outside the timing
        started = time.perf_counter()
        await asyncio.gather(*(client.get_subscription(PKG, t) for t in tokens))
        elapsed = time.perf_counter() - started
        client.close()
    return len(tokens) / elapsed


async def official(fake: FakePlay, keys: GoogleTestKeys, tokens: list[str], threads: int) -> float:
    local = threading.local()  # httplib2.Http is not thread-safe: one service per thread

    def service() -> Any:
        if not hasattr(local, "svc"):
            creds = service_account.Credentials.from_service_account_info(
                keys.service_account_info(fake.token_uri), scopes=[SCOPE]
            )
            http = google_auth_httplib2.AuthorizedHttp(creds, http=httplib2.Http())
            local.svc = build(
                "androidpublisher",
                "v3",
                http=http,
                static_discovery=True,
                cache_discovery=False,
                client_options={"api_endpoint": fake.base_url},
            )
        return local.svc

    def get(token: str) -> Any:
        svc = service().purchases().subscriptionsv2()
        return svc.get(packageName=PKG, token=token).execute(num_retries=2)

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        # Build one service per thread (discovery parsing, token) outside the timing.
        await asyncio.gather(*(loop.run_in_executor(pool, get, tokens[0]) for _ in range(threads)))
        started = time.perf_counter()
        await asyncio.gather(*(loop.run_in_executor(pool, get, t) for t in tokens))
        elapsed = time.perf_counter() - started
    return len(tokens) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    keys = GoogleTestKeys.generate()
    fake = FakePlay(keys=keys, delay=args.delay)
    await fake.start()
    try:
        tokens = [f"tok-{i}" for i in range(args.n)]
        now = datetime.now(UTC)  # a benchmark runs in real time
        for t in tokens:
            fake.set_subscription(PKG, t, subscription_purchase("active", now=now))
        rest = await ours(fake, keys, tokens)
        threaded = await official(fake, keys, tokens, args.threads)
    finally:
        await fake.stop()
    print(f"n={args.n} reads, Play API delay {args.delay * 1000:.0f} ms")
    print(f"{'client':<58}{'reads/s':>10}")
    print(f"{'receiptd PlayClient (aiohttp, all concurrent)':<58}{rest:>10.0f}")
    label = f"google-api-python-client, {args.threads}-thread pool"
    print(f"{label:<58}{threaded:>10.0f}")
    print(f"ratio: {rest / threaded:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
