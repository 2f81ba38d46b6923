"""What the platform does, each module one part of it: log-in (``auth``), keys, the miner's
tasks (``tasks``), the worker's queue (``queue``, and on PostgreSQL ``pgqueue``),
subscriptions, drafts, the miner's dashboard and team, agreement among answers, the
hotkey registry and the log-in limit. They read and write through
:mod:`dojo.platform.storage` and know nothing of HTTP but the status each error maps to
(:mod:`dojo.platform.errors`).
"""
