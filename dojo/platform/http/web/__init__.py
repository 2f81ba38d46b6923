"""The worker platform's web UI: server-rendered pages, a little JavaScript, no build step.

``router`` holds the page routes (login, subscription keys, task list, task page, miner
dashboard) and serves ``/static/``; the platform's app factory includes it. Pages read
through the platform's service modules; every write goes through the JSON API
(``docs/platform-api.md``) from the page's JavaScript, with the CSRF header.
"""

from __future__ import annotations

from dojo.platform.http.web._pages import router

__all__ = ["router"]
