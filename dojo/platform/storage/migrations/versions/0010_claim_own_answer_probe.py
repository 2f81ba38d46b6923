"""the claim's search asks about the worker's own answer task by task, whatever the worker's history

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07

``dojo_next_task`` passes over the tasks the worker has answered, skipped or holds. Its plan
(made once per connection, ``force_generic_plan``) read that test as an anti-join: every
assignment the worker ever had, read once per claim and set against the tasks the search
walked. A worker's assignments only grow, so each claim cost more than the last: one
connection claiming and submitting in turn for 200 workers, the backend's CPU per claim rose
0.39 → 0.45 → 0.48 → 0.51 → 0.54 → 0.59 ms over six windows of 3 000 calls (a ``VACUUM`` between
the fourth and the fifth changed nothing). A worker ranking for hours pays it on every claim.

``OFFSET 0`` keeps the test a sub-query of each task the search walks (PostgreSQL does not
turn a sub-query with an offset into a join), answered from the ``(task_id, worker_id)``
unique index: one look-up per task, the same for a worker's first claim and its thousandth.
Both functions also plan with their indexes (``enable_seqscan = off``; every statement in them
has one): planned while the tables were nearly empty, as on a new platform's first claims, the
sub-query would read the whole of ``assignments`` for every task walked, and the plan is kept
for the connection's life. Figures: :mod:`dojo.platform.http.hotpath`.
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Fixed history, as 0009 reads 0008 (see there).
_0009 = importlib.import_module("dojo.platform.storage.migrations.versions.0009_full_until")

# The end of the test of the worker's own assignment, in both walks.
_OWN = (
    "AND (a.status <> 'held' OR a.held_until > p_now))",
    "AND (a.status <> 'held' OR a.held_until > p_now) OFFSET 0)",
)

# Planned once per connection, perhaps while the tables are nearly empty, where reading a
# table whole looks cheaper than its index: every statement here has an index to use.
_INDEXED = (
    "SET plan_cache_mode = force_generic_plan AS",
    "SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS",
)

NEXT_TASK = _0009._changed(_0009.NEXT_TASK, _OWN, _INDEXED)
SUBMIT_RESULT = _0009._changed(_0009.SUBMIT_RESULT, _INDEXED)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(NEXT_TASK)
        op.execute(SUBMIT_RESULT)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_0009.NEXT_TASK)
        op.execute(_0009.SUBMIT_RESULT)
