"""Bad input at scale: schemathesis drives every operation of `openapi.yaml` against the real
app (real PostgreSQL and Redis, both stores configured) and checks each answer: never a 5xx,
a status the document lists for the operation, the documented content type, and a body that
matches the documented schema.

A bounded run: a few derandomized examples per operation (the same ones every run), valid
and invalid inputs alike, sent with an admin key so requests get past authentication. The
app is served on 127.0.0.1 from a thread of its own (schemathesis calls it over HTTP).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from config.settings import Settings
from server.app import create_app
from simulators.apple_ca import TestCA
from simulators.google_signer import GoogleTestKeys
from tests.conftest import ADMIN_KEY, Clones, auth, base_config, with_database
from tests.e2e.apple_helpers import apple_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_PER_OPERATION = 8  # ~18 operations: about 150 requests in all

schema = schemathesis.openapi.from_path(ROOT / "openapi.yaml")


class ThreadedApp:
    """The real app on 127.0.0.1, served by an event loop in a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="schemathesis-app", daemon=True)
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self.url = ""

    def __enter__(self) -> ThreadedApp:
        self._thread.start()
        self._ready.wait(60)
        if self._failed is not None or not self.url:
            raise RuntimeError("the app did not start") from self._failed
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(create_app(self._settings), access_log=None)
        try:
            self._loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        except BaseException as exc:
            self._failed = exc
            self._ready.set()
            raise
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()


@pytest.fixture(scope="module")
async def module_database(clones: Clones) -> AsyncIterator[str]:
    name = await clones.take()
    yield with_database(clones.server_url, name)
    clones.give_back(name)


@pytest.fixture(scope="module")
def served_url(
    module_database: str, redis_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    ca = TestCA.generate()
    ca.save(tmp / "apple-ca")
    keys = GoogleTestKeys.generate()
    certs = tmp / "google-certs.json"
    certs.write_text(json.dumps(keys.certs_json()))
    cfg = apple_config(base_config(module_database, redis_server_url, tmp), tmp / "apple-ca")
    cfg["google"] = {
        "package_names": ["com.example.app"],
        "play_api_url": "http://127.0.0.1:9/",  # never reached: no push authenticates
        "pubsub_audience": "https://receiptd.test/webhooks/google",
        "pubsub_service_account": "push@example.iam.gserviceaccount.com",
        "pubsub_certs_url": certs.as_uri(),
    }
    with ThreadedApp(Settings(**cfg)) as app:
        yield app.url


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case: schemathesis.Case, served_url: str) -> None:
    case.call_and_validate(
        base_url=served_url,
        headers=auth(ADMIN_KEY),
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=10,
    )
