"""localstripe (PyPI: a stateful fake of Stripe's API) on 127.0.0.1 only.

localstripe's own `start()` binds every interface; this runs the same aiohttp
application on the loopback address. It stops by itself when the process
that started it (the test or scripts/run) is gone.

One route of ours is added, for what localstripe lacks: Stripe's documented
`GET /v1/balance_transactions` (newest first; `limit`, `starting_after`,
`created[gte]`, `created[lt]`), listing the balance transactions localstripe
itself records for charges and refunds (its own `/v1/balance/history` list
fails with a TypeError in 1.15.10). It sits behind localstripe's middleware,
so it needs a secret key like every other call.

    python scripts/run-localstripe.py <port>
"""

import asyncio
import os
import sys

from aiohttp import web
from localstripe.resources import store
from localstripe.server import app


async def balance_transactions(request: web.Request) -> web.Response:
    q = request.query
    try:
        limit = int(q.get("limit", "10"))
        gte = int(q["created[gte]"]) if "created[gte]" in q else None
        lt = int(q["created[lt]"]) if "created[lt]" in q else None
    except ValueError:
        return web.json_response(
            {"error": {"type": "invalid_request_error", "message": "Invalid integer"}}, status=400
        )
    if not 1 <= limit <= 100:
        return web.json_response(
            {"error": {"type": "invalid_request_error", "message": "limit must be 1 to 100"}},
            status=400,
        )
    txns = sorted(
        (o for k, o in list(store.items()) if k.startswith("balance_transaction:")),
        key=lambda t: (t.created, t.id),
        reverse=True,
    )
    txns = [t for t in txns if (gte is None or t.created >= gte) and (lt is None or t.created < lt)]
    after = q.get("starting_after")
    if after is not None:
        ids = [t.id for t in txns]
        if after not in ids:
            return web.json_response(
                {"error": {"type": "invalid_request_error", "message": "No such balance transaction"}},
                status=400,
            )
        txns = txns[ids.index(after) + 1 :]
    page = txns[:limit]
    return web.json_response(
        {
            "object": "list",
            "url": "/v1/balance_transactions",
            "has_more": len(txns) > limit,
            "data": [t._export() for t in page],
        }
    )


async def watch_parent(parent: int) -> None:
    while True:
        await asyncio.sleep(1)
        if os.getppid() != parent:
            os._exit(0)


async def start_watch(_app: web.Application) -> None:
    asyncio.ensure_future(watch_parent(os.getppid()))


def main() -> None:
    port = int(sys.argv[1])
    app.on_startup.append(start_watch)
    app.router.add_get("/v1/balance_transactions", balance_transactions)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
