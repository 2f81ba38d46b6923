"""An ASGI app factory whose process dies a moment after it starts (a crash loop)."""

import os
import threading


def app():
    threading.Timer(0.3, os._exit, args=(7,)).start()

    async def asgi(scope, receive, send):  # pragma: no cover - never asked
        raise RuntimeError("not served")

    return asgi
