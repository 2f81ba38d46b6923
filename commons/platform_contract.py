"""Names the Dojo API contract fixes (``docs/platform-api.md``), declared once for the
platform that answers by them and the clients that speak them (the miner's client, the
simulated workers, the tests): the session cookies, the CSRF cookie and header, and the
first line of the message a miner's hotkey signs to log in.

The web UI's script (``dojo/platform/http/web/static/dojo.js``) sends the CSRF header under this
name too.
"""

from __future__ import annotations

__all__ = ["CSRF_COOKIE", "CSRF_HEADER", "LOGIN_MESSAGE_HEADER", "MINER_COOKIE", "WORKER_COOKIE"]

MINER_COOKIE = "dojo_miner_session"
WORKER_COOKIE = "dojo_worker_session"
# CSRF: every unsafe request a session cookie authenticates sends, in the header, the token
# the page it came from carries (bound to the session; before a log-in, to this anonymous
# cookie).
CSRF_COOKIE = "dojo_csrf"
CSRF_HEADER = "x-csrf-token"
# The first line of a miner's login message; the client refuses to sign anything else.
LOGIN_MESSAGE_HEADER = "dojo-platform-login"
