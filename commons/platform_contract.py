"""Names the Dojo API contract fixes (``docs/platform-api.md``), declared once for the
platform that answers by them and the clients that speak them (the miner's client, the
simulated workers, the tests): the session cookies, the CSRF cookie and header, and the
first line of the message a miner's hotkey signs to log in.

The web UI's script (``dojo/platform/web/static/dojo.js``) reads the CSRF cookie and sends
the header under these names too.
"""

from __future__ import annotations

__all__ = ["CSRF_COOKIE", "CSRF_HEADER", "LOGIN_MESSAGE_HEADER", "MINER_COOKIE", "WORKER_COOKIE"]

MINER_COOKIE = "dojo_miner_session"
WORKER_COOKIE = "dojo_worker_session"
# Double-submit CSRF: the cookie's value, sent back in the header on every unsafe request
# that a session cookie authenticates.
CSRF_COOKIE = "dojo_csrf"
CSRF_HEADER = "x-csrf-token"
# The first line of a miner's login message; the client refuses to sign anything else.
LOGIN_MESSAGE_HEADER = "dojo-platform-login"
