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

# The rules are 0008's (dojo.platform.services.queue's docstring names them; the parity test
# keeps them alike); what changed is marked "0009".
_ACCESS = """EXISTS (SELECT 1 FROM subscriptions s LEFT JOIN api_keys k ON k.id = s.key_id
            WHERE s.worker_id = p_worker AND s.miner_id = {miner}
              AND (s.key_id IS NULL OR k.disabled_at IS NULL))"""

# 0009: a task marked full until later than now is passed over before its holds are counted
# (PostgreSQL tests the plain comparisons before the sub-queries).
_OPEN = """t.num_results < t.max_results AND t.expire_at > p_soonest
              AND (t.full_until IS NULL OR t.full_until <= p_now)
              AND t.num_results + (SELECT count(*) FROM assignments a
                    WHERE a.task_id = t.id AND a.status = 'held' AND a.held_until > p_now) < t.max_results
              AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = p_worker
                    AND (a.status <> 'held' OR a.held_until > p_now))"""

_OPEN_IDS = """SELECT o.id FROM unnest(v_miners) AS m(miner_id)
              CROSS JOIN LATERAL (SELECT t.id, t.expire_at FROM tasks t
                                   WHERE t.miner_id = m.miner_id AND {open}
                                   ORDER BY t.expire_at LIMIT {limit}) AS o
             ORDER BY o.expire_at LIMIT {limit}"""

_TASK_COLUMNS = (
    "t.id, t.miner_id, t.title, t.body, t.prompt, t.task_type, t.criteria, t.completions,"
    " t.num_results, t.max_results, t.expire_at, t.full_until"
)

# 0009: under the task's row lock (a fresh read), the places are counted once, with the end of
# the first of the others' live holds; a hold that takes the last place marks the task full
# until the first hold on it lapses (its own included).
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

NEXT_TASK = f"""
CREATE OR REPLACE FUNCTION dojo_next_task(
    p_worker integer, p_now timestamp, p_soonest timestamp, p_hold double precision,
    p_spread integer, p_tries integer)
RETURNS TABLE (
    id varchar, miner_id integer, title varchar, body text, prompt text, task_type varchar,
    criteria json, completions json, num_results integer, max_results integer,
    expire_at timestamp, held_until timestamp)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $fn$
#variable_conflict use_column
DECLARE
    v_held record;
    v_miners integer[];
    v_id varchar;
    v_task record;
    v_until timestamp;
    v_others bigint;
    v_first timestamp;
BEGIN
    -- A hold is soft state: a crash of the database server may forget the last instants of
    -- them (their places come free again), so a claim does not wait for its WAL to be flushed.
    -- Any later commit that depends on it (a submission) flushes it first.
    PERFORM set_config('synchronous_commit', 'off', true);

    SELECT a.task_id, a.held_until INTO v_held
      FROM assignments a JOIN tasks t ON t.id = a.task_id
     WHERE a.worker_id = p_worker AND a.status = 'held' AND a.held_until > p_now AND t.expire_at > p_soonest
       AND {_ACCESS.format(miner="t.miner_id")}
     ORDER BY t.expire_at LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT t.id, t.miner_id, t.title, t.body, t.prompt, t.task_type, t.criteria,
            t.completions, t.num_results, t.max_results, t.expire_at, v_held.held_until
          FROM tasks t WHERE t.id = v_held.task_id;
        RETURN;
    END IF;

    SELECT array_agg(s.miner_id) INTO v_miners
      FROM subscriptions s LEFT JOIN api_keys k ON k.id = s.key_id
     WHERE s.worker_id = p_worker AND (s.key_id IS NULL OR k.disabled_at IS NULL);
    IF v_miners IS NULL THEN
        RETURN;
    END IF;

    -- Without waiting first: the soonest open tasks in random order, so that concurrent
    -- workers try different ones, each taken under its row lock unless another holds it.
    -- The lock's read is fresh; the places are counted again under it (a new snapshot).
    FOR v_id IN SELECT c.id FROM ({_OPEN_IDS.format(open=_OPEN, limit="p_spread")}) AS c ORDER BY random()
    LOOP
        SELECT {_TASK_COLUMNS} INTO v_task FROM tasks t WHERE t.id = v_id FOR NO KEY UPDATE SKIP LOCKED;
        {_TRY}
    END LOOP;

    -- Then waiting for each lock, soonest deadline first: a task locked for a moment (a
    -- submission on it) never reads as "no task".
    FOR v_id IN {_OPEN_IDS.format(open=_OPEN, limit="p_tries")}
    LOOP
        SELECT {_TASK_COLUMNS} INTO v_task FROM tasks t WHERE t.id = v_id FOR NO KEY UPDATE;
        {_TRY}
    END LOOP;
END
$fn$
"""

# A submission ends the hold and its draft.
_DONE = """INSERT INTO assignments (task_id, worker_id, status, held_until, created_at, updated_at)
    VALUES (p_task, p_worker, 'done', p_now, p_now, p_now)
    ON CONFLICT (task_id, worker_id) DO UPDATE
    SET status = excluded.status, held_until = excluded.held_until, updated_at = excluded.updated_at,
        draft = NULL, draft_saved_at = NULL;"""

SUBMIT_RESULT = f"""
CREATE OR REPLACE FUNCTION dojo_submit_result(
    p_worker integer, p_task varchar, p_data json, p_lead double precision, p_rationale text,
    p_now timestamp)
RETURNS TABLE (outcome text, expire_at timestamp, max_results integer)
LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $fn$
#variable_conflict use_column
DECLARE
    v_task record;
    v_mine record;
    v_wall double precision;
    v_given double precision := p_lead;
    v_lead double precision;
BEGIN
    SELECT t.id, t.miner_id, t.num_results, t.max_results, t.expire_at INTO v_task
      FROM tasks t WHERE t.id = p_task FOR NO KEY UPDATE;
    IF NOT FOUND OR NOT {_ACCESS.format(miner="v_task.miner_id")} THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::timestamp, NULL::integer;
        RETURN;
    END IF;
    IF v_task.expire_at <= p_now THEN
        RETURN QUERY SELECT 'expired'::text, v_task.expire_at, v_task.max_results;
        RETURN;
    END IF;
    IF p_data IS NULL THEN  -- the application refused the answer; nothing above refuses first
        RETURN QUERY SELECT 'invalid'::text, v_task.expire_at, v_task.max_results;
        RETURN;
    END IF;

    SELECT r.id AS result_id, r.lead_time, a.status, a.held_until, a.created_at AS claimed_at INTO v_mine
      FROM (SELECT 1 AS one) AS x
      LEFT JOIN results r ON r.task_id = p_task AND r.worker_id = p_worker
      LEFT JOIN assignments a ON a.task_id = p_task AND a.worker_id = p_worker;

    -- The time spent, as queue.lead_time_total: summed over resubmissions, never more than
    -- the time since the first claim; without a measure, a first answer counts from the claim.
    IF v_mine.claimed_at IS NOT NULL THEN
        v_wall := extract(epoch FROM p_now - v_mine.claimed_at);
    END IF;
    IF v_given IS NULL AND v_mine.result_id IS NULL THEN
        v_given := v_wall;
    END IF;
    IF v_given IS NULL THEN
        v_lead := v_mine.lead_time;
    ELSE
        v_lead := coalesce(v_mine.lead_time, 0) + v_given;
        IF v_wall IS NOT NULL THEN
            v_lead := least(v_lead, greatest(v_wall, 0));
        END IF;
    END IF;

    IF v_mine.result_id IS NOT NULL THEN
        UPDATE results SET result_data = p_data, lead_time = v_lead, rationale = p_rationale,
               updated_at = p_now
         WHERE id = v_mine.result_id;
        {_DONE}
        -- 0009: a hold ended by a resubmission frees a place (its result already had one).
        IF v_mine.status = 'held' THEN
            UPDATE tasks SET full_until = NULL WHERE id = p_task AND full_until IS NOT NULL;
        END IF;
        RETURN QUERY SELECT 'replaced'::text, v_task.expire_at, v_task.max_results;
        RETURN;
    END IF;
    IF v_mine.status = 'skipped' THEN
        RETURN QUERY SELECT 'skipped'::text, v_task.expire_at, v_task.max_results;
        RETURN;
    END IF;
    IF NOT coalesce(v_mine.status = 'held' AND v_mine.held_until > p_now, false) THEN
        IF v_task.num_results >= v_task.max_results THEN
            RETURN QUERY SELECT 'full'::text, v_task.expire_at, v_task.max_results;
            RETURN;
        END IF;
        IF v_task.num_results + (SELECT count(*) FROM assignments a
              WHERE a.task_id = p_task AND a.status = 'held' AND a.held_until > p_now
                AND a.worker_id <> p_worker) >= v_task.max_results THEN
            RETURN QUERY SELECT 'held_by_others'::text, v_task.expire_at, v_task.max_results;
            RETURN;
        END IF;
    END IF;
    INSERT INTO results (task_id, worker_id, result_data, lead_time, rationale, created_at, updated_at)
    VALUES (p_task, p_worker, p_data, v_lead, p_rationale, p_now, p_now);
    UPDATE tasks SET num_results = num_results + 1 WHERE id = p_task;
    {_DONE}
    RETURN QUERY SELECT 'stored'::text, v_task.expire_at, v_task.max_results;
END
$fn$
"""

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


def _revision_0008() -> object:
    # Alembic loads each revision under a name of its own; this is the file's package path.
    return importlib.import_module(
        "dojo.platform.storage.migrations.versions.0008_postgres_queue_and_login_limits"
    )


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
        previous = _revision_0008()
        op.execute(previous.NEXT_TASK)  # type: ignore[attr-defined]
        op.execute(previous.SUBMIT_RESULT)  # type: ignore[attr-defined]
        op.execute("DROP TRIGGER tasks_places_added ON tasks")
        op.execute("DROP TRIGGER assignments_hold_deleted ON assignments")
        op.execute("DROP TRIGGER assignments_hold_changed ON assignments")
        op.execute("DROP FUNCTION dojo_places_added()")
        op.execute("DROP FUNCTION dojo_hold_ended()")
    op.drop_column("tasks", "full_until")
