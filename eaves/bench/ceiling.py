"""The ceiling for this stack: a bare Starlette app on uvicorn (httptools, uvloop) that does the least a
gateway must — check a bearer key, parse the JSON body — and returns a fixed body.

Nothing built on Starlette and uvicorn can answer faster on one core, so the emulator's cache-hit
throughput is reported as a share of this app's, measured in the same run with the same load.

    python -m eaves.bench.ceiling --port 8799 --key KEY
"""

from __future__ import annotations

import argparse
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FIXED_BODY = (b'{"id":"chatcmpl-ceiling","object":"chat.completion","created":1700000000,"model":"eaves-default",'
              b'"choices":[{"index":0,"message":{"role":"assistant","content":"A fixed answer from the ceiling '
              b'app."},"finish_reason":"stop"}],"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}}')


def create_app() -> Starlette:
    expected = "Bearer " + os.environ.get("EAVES_CEILING_KEY", "ceiling")

    async def chat(request: Request) -> Response:
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        try:
            payload = await request.json()
        except ValueError:
            return JSONResponse({"error": {"message": "bad JSON"}}, status_code=400)
        if not isinstance(payload, dict) or not payload.get("messages"):
            return JSONResponse({"error": {"message": "no messages"}}, status_code=400)
        return Response(FIXED_BODY, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"])])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--key", default=os.environ.get("EAVES_CEILING_KEY", "ceiling"))
    args = parser.parse_args()
    os.environ["EAVES_CEILING_KEY"] = args.key
    uvicorn.run("eaves.bench.ceiling:create_app", factory=True, host=args.host, port=args.port, workers=1,
                loop="uvloop", http="httptools", access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
