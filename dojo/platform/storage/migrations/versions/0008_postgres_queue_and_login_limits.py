"""the queue's two hot calls as PostgreSQL functions; log-in limits shared by every replica

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

- On PostgreSQL, ``dojo_next_task`` and ``dojo_submit_result``: a claim and a submission,
  each one statement (one round trip) run as a transaction of its own, in place of the
  seven to nine statements the application sent one at a time. The rules are those of
  ``dojo.platform.services.queue`` (which runs them itself on SQLite); see ``dojo.platform.services.pgqueue``.
  Their statements are planned once per connection (``force_generic_plan``): left to
  choose, PostgreSQL planned the search for open tasks afresh on every call, a fifth of
  the call's time.
- ``login_limits``: one row per client address, the state of its log-in rate limit
  (``dojo.platform.services.limits``), so that every replica of a platform counts the same attempts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The rules on taking a task are named in dojo.platform.services.queue's docstring; these are the hot
# path's copy on PostgreSQL (tests/dojo/platform/test_rule_parity.py keeps them alike).
# A worker's live access to a miner's tasks: a subscription by invite, or by a key still enabled.
_ACCESS = """EXISTS (SELECT 1 FROM subscriptions s LEFT JOIN api_keys k ON k.id = s.key_id
            WHERE s.worker_id = p_worker AND s.miner_id = {miner}
              AND (s.key_id IS NULL OR k.disabled_at IS NULL))"""

# A task this worker may be handed now: open, with the time a person needs left before its
# deadline (``p_soonest``), with a place that neither
# results nor other workers' live holds take, and not already answered, skipped or held by it.
_OPEN = """t.num_results < t.max_results AND t.expire_at > p_soonest
              AND t.num_results + (SELECT count(*) FROM assignments a
                    WHERE a.task_id = t.id AND a.status = 'held' AND a.held_until > p_now) < t.max_results
              AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id AND a.worker_id = p_worker
                    AND (a.status <> 'held' OR a.held_until > p_now))"""

# Up to ``{limit}`` open tasks of the worker's miners, soonest deadline first: one walk of the
# partial index ix_tasks_open per miner, each stopping at the limit.
_OPEN_IDS = """SELECT o.id FROM unnest(v_miners) AS m(miner_id)
              CROSS JOIN LATERAL (SELECT t.id, t.expire_at FROM tasks t
                                   WHERE t.miner_id = m.miner_id AND {open}
                                   ORDER BY t.expire_at LIMIT {limit}) AS o
             ORDER BY o.expire_at LIMIT {limit}"""

_TASK_COLUMNS = (
    "t.id, t.miner_id, t.title, t.body, t.prompt, t.task_type, t.criteria, t.completions,"
    " t.num_results, t.max_results, t.expire_at"
)

_CLAIMABLE = """v_task.num_results < v_task.max_results AND v_task.expire_at > p_soonest
           AND v_task.num_results + (SELECT count(*) FROM assignments a
                 WHERE a.task_id = v_task.id AND a.status = 'held' AND a.held_until > p_now
                   AND a.worker_id <> p_worker) < v_task.max_results"""

# A hold lasts ``p_hold`` seconds, never past the deadline, and keeps the worker's draft.
_HOLD = """v_until := least(p_now + p_hold * interval '1 second', v_task.expire_at);
            INSERT INTO assignments (task_id, worker_id, status, held_until, created_at, updated_at)
            VALUES (v_task.id, p_worker, 'held', v_until, p_now, p_now)
            ON CONFLICT (task_id, worker_id) DO UPDATE
            SET status = excluded.status, held_until = excluded.held_until, updated_at = excluded.updated_at;
            RETURN QUERY SELECT v_task.id, v_task.miner_id, v_task.title, v_task.body, v_task.prompt,
                v_task.task_type, v_task.criteria, v_task.completions, v_task.num_results,
                v_task.max_results, v_task.expire_at, v_until;
            RETURN;"""

# A submission ends the hold and its draft.
_DONE = """INSERT INTO assignments (task_id, worker_id, status, held_until, created_at, updated_at)
    VALUES (p_task, p_worker, 'done', p_now, p_now, p_now)
    ON CONFLICT (task_id, worker_id) DO UPDATE
    SET status = excluded.status, held_until = excluded.held_until, updated_at = excluded.updated_at,
        draft = NULL, draft_saved_at = NULL;"""

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
        RETURN QUERY SELECT {_TASK_COLUMNS}, v_held.held_until FROM tasks t WHERE t.id = v_held.task_id;
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
        IF FOUND AND {_CLAIMABLE} THEN
            {_HOLD}
        END IF;
    END LOOP;

    -- Then waiting for each lock, soonest deadline first: a task locked for a moment (a
    -- submission on it) never reads as "no task".
    FOR v_id IN {_OPEN_IDS.format(open=_OPEN, limit="p_tries")}
    LOOP
        SELECT {_TASK_COLUMNS} INTO v_task FROM tasks t WHERE t.id = v_id FOR NO KEY UPDATE;
        IF FOUND AND {_CLAIMABLE} THEN
            {_HOLD}
        END IF;
    END LOOP;
END
$fn$
"""

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


def upgrade() -> None:
    op.create_table(
        "login_limits",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_login_limits"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(NEXT_TASK)
        op.execute(SUBMIT_RESULT)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION dojo_submit_result(integer, varchar, json, double precision, text, timestamp)"
        )
        op.execute(
            "DROP FUNCTION dojo_next_task(integer, timestamp, timestamp, double precision, integer, integer)"
        )
    op.drop_table("login_limits")
