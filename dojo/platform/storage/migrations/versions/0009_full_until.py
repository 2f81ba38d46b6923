"""tasks.full_until: the claim's search passes over a task whose places are all held without counting them

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

With many workers many of the soonest open tasks have every place taken by other workers'
holds, and ``dojo_next_task`` counted each one's live holds from ``assignments`` on every
claim. Now the claim whose hold fills a
task's last place writes on the task the moment the first of those holds lapses
(``full_until``); until then the search passes over the task without counting (on
PostgreSQL; SQLite's search ignores the column).

The mark is a promise that no place comes free before ``full_until``: a hold lapsing frees
its place at its own end, never sooner. Everything else that frees a place clears it, in the
database, so that no code path can forget: a trigger on ``assignments`` when a hold ends
other than by a submission (skipped, deleted, its end brought forward), one on ``tasks`` when
``num_results`` goes down or ``max_results`` up. A submission on a full task takes a place
as it frees its hold, so it leaves the mark, except a resubmission ending a hold (its place
was already counted by its result), which clears it. The triggers take the task's row lock
before clearing, so a claim counting under that lock at the same moment either sees the hold
gone or has its mark cleared after it commits.

The column is in no index, so writing it can be a HOT update (when the task's page has room).
Figures: ``dojo.platform.http.hotpath``'s docstring.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


# Alembic loads each revision under a name of its own; this is 0008's package path. Its
# functions' text is fixed history: 0009's are that text with the changes below, each of
# which must find what it replaces.
_0008 = importlib.import_module(
    "dojo.platform.storage.migrations.versions.0008_postgres_queue_and_login_limits"
)


def _changed(text: str, *changes: tuple[str, str]) -> str:
    for old, new in changes:
        if old not in text:
            raise RuntimeError(f"revision 0008's function no longer holds {old[:60]!r}")
        text = text.replace(old, new)
    return text


# The search passes over a task marked full until later than now before counting its holds
# (PostgreSQL tests the plain comparisons before the sub-queries).
_OPEN = _changed(
    _0008._OPEN,
    (
        "t.expire_at > p_soonest\n",
        "t.expire_at > p_soonest\n              AND (t.full_until IS NULL OR t.full_until <= p_now)\n",
    ),
)

# Under the task's row lock (a fresh read), the places are counted once, with the end of the
# first of the others' live holds; a hold that takes the last place marks the task full until
# the first hold on it lapses (its own included).
_TRY = """IF FOUND AND v_task.num_results < v_task.max_results AND v_task.expire_at > p_soonest
           AND (v_task.full_until IS NULL OR v_task.full_until <= p_now) THEN
            SELECT count(*), min(a.held_until) INTO v_others, v_first FROM assignments a
             WHERE a.task_id = v_task.id AND a.status = 'held' AND a.held_until > p_now
               AND a.worker_id <> p_worker;
            IF v_task.num_results + v_others < v_task.max_results THEN
                v_until := least(p_now + p_hold * interval '1 second', v_task.expire_at);
                INSERT INTO assignments (task_id, worker_id, status, held_until, created_at, updated_at)
                VALUES (v_task.id, p_worker, 'held', v_until, p_now, p_now)
                ON CONFLICT (task_id, worker_id) DO UPDATE
                SET status = excluded.status, held_until = excluded.held_until,
                    updated_at = excluded.updated_at;
                IF v_task.num_results + v_others + 1 >= v_task.max_results THEN
                    UPDATE tasks SET full_until = least(v_first, v_until) WHERE id = v_task.id;
                END IF;
                RETURN QUERY SELECT v_task.id, v_task.miner_id, v_task.title, v_task.body, v_task.prompt,
                    v_task.task_type, v_task.criteria, v_task.completions, v_task.num_results,
                    v_task.max_results, v_task.expire_at, v_until;
                RETURN;
            END IF;
        END IF;"""

NEXT_TASK = _changed(
    _0008.NEXT_TASK,
    (_0008._OPEN, _OPEN),
    (f"SELECT {_0008._TASK_COLUMNS} INTO v_task", f"SELECT {_0008._TASK_COLUMNS}, t.full_until INTO v_task"),
    (f"IF FOUND AND {_0008._CLAIMABLE} THEN\n            {_0008._HOLD}\n        END IF;", _TRY),
    (
        "    v_until timestamp;\nBEGIN",
        "    v_until timestamp;\n    v_others bigint;\n    v_first timestamp;\nBEGIN",
    ),
)

# A hold ended by a resubmission frees a place (its result already had one).
SUBMIT_RESULT = _changed(
    _0008.SUBMIT_RESULT,
    (
        "        RETURN QUERY SELECT 'replaced'::text",
        "        IF v_mine.status = 'held' THEN\n"
        "            UPDATE tasks SET full_until = NULL WHERE id = p_task AND full_until IS NOT NULL;\n"
        "        END IF;\n"
        "        RETURN QUERY SELECT 'replaced'::text",
    ),
)

# A hold that ends other than by a submission ('done', which stores a result in the same
# transaction: the place stays taken) frees its place: the task's mark goes. The task's row
# is locked first (see the docstring), then the mark cleared if it is still there.
CLEAR_ON_HOLD_END = """
CREATE OR REPLACE FUNCTION dojo_hold_ended() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM 1 FROM tasks WHERE id = OLD.task_id FOR NO KEY UPDATE;
    UPDATE tasks SET full_until = NULL WHERE id = OLD.task_id AND full_until IS NOT NULL;
    RETURN NULL;
END
$fn$
"""
# Only rows that were holds: the trigger's condition is tested without calling the function.
# A submission's 'done' row ends the hold at that instant too (held_until = now): not a hold
# shortened, or every answer on a full task would clear its mark.
HOLD_ENDED_TRIGGERS = (
    """CREATE TRIGGER assignments_hold_changed AFTER UPDATE ON assignments FOR EACH ROW
    WHEN (OLD.status = 'held' AND (NEW.status NOT IN ('held', 'done') OR NEW.task_id <> OLD.task_id
                                   OR (NEW.status = 'held' AND NEW.held_until < OLD.held_until)))
    EXECUTE FUNCTION dojo_hold_ended()""",
    """CREATE TRIGGER assignments_hold_deleted AFTER DELETE ON assignments FOR EACH ROW
    WHEN (OLD.status = 'held')
    EXECUTE FUNCTION dojo_hold_ended()""",
)
# Fewer results counted, or more places: the task's own update drops the mark.
CLEAR_ON_MORE_PLACES = """
CREATE OR REPLACE FUNCTION dojo_places_added() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.full_until := NULL;
    RETURN NEW;
END
$fn$
"""
MORE_PLACES_TRIGGER = """CREATE TRIGGER tasks_places_added BEFORE UPDATE ON tasks FOR EACH ROW
    WHEN (NEW.num_results < OLD.num_results OR NEW.max_results > OLD.max_results)
    EXECUTE FUNCTION dojo_places_added()"""


def upgrade() -> None:
    # Plain ADD COLUMN, as in 0005: no batch copy of a table others reference.
    op.add_column("tasks", sa.Column("full_until", sa.DateTime(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CLEAR_ON_HOLD_END)
        for trigger in HOLD_ENDED_TRIGGERS:
            op.execute(trigger)
        op.execute(CLEAR_ON_MORE_PLACES)
        op.execute(MORE_PLACES_TRIGGER)
        op.execute(NEXT_TASK)
        op.execute(SUBMIT_RESULT)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_0008.NEXT_TASK)
        op.execute(_0008.SUBMIT_RESULT)
        op.execute("DROP TRIGGER tasks_places_added ON tasks")
        op.execute("DROP TRIGGER assignments_hold_deleted ON assignments")
        op.execute("DROP TRIGGER assignments_hold_changed ON assignments")
        op.execute("DROP FUNCTION dojo_places_added()")
        op.execute("DROP FUNCTION dojo_hold_ended()")
    op.drop_column("tasks", "full_until")
