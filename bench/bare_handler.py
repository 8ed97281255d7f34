"""The baseline of bench/read.py: a bare aiohttp handler on GET /v1/customers/{id} with the
same Bearer key check as receiptd (SHA-256 digest, constant-time compare against every
configured key) that returns the same bytes receiptd rendered for a customer. No logging,
no metrics, no middleware: what aiohttp itself costs per request.

    python bench/bare_handler.py PORT KEY BODY_FILE
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from pathlib import Path

from aiohttp import web


def main() -> int:
    port, key, body_file = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    body = body_file.read_bytes()
    digests = [hashlib.sha256(key.encode()).digest()]

    async def customer(request: web.Request) -> web.Response:
        scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
        presented = hashlib.sha256(secret.strip().encode()).digest()
        found = False
        for digest in digests:
            found |= hmac.compare_digest(presented, digest)
        if scheme.lower() != "bearer" or not found:
            return web.Response(status=401)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/customers/{app_user_id}", customer)
    app.router.add_get("/readyz", lambda _r: _ok())
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=lambda *_: None)
    return 0


async def _ok() -> web.Response:
    return web.Response(text="ok")


if __name__ == "__main__":
    raise SystemExit(main())
