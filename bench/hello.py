"""The baseline server: a hello-world Starlette route on the uvicorn settings the node ships.

``grassroots serve`` calls ``uvicorn.run`` with uvicorn[standard] (uvloop and
httptools picked automatically), warning-level logs, no access log, no
proxy headers and no WebSocket implementation; so does this. Run: ``python -m bench.hello PORT``.
"""
from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!")


app = Starlette(routes=[Route("/", hello)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, proxy_headers=False, ws="none")
