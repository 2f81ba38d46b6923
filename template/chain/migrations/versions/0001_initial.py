"""the local chain's tables: chain, subnets, neurons, weights, commitments, epochs, bonds

Revision ID: 0001
Revises:
Create Date: 2026-12-06

A chain file written before the chain's schema came from migrations has these tables
already, and perhaps not the subnet settings and tables added later (commit-reveal, Yuma's
epochs and bonds): each statement creates or adds only what is missing, so this revision
adopts such a file, rows kept, as well as creating a new one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = (
    """CREATE TABLE IF NOT EXISTS chain (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    genesis_time REAL NOT NULL,
    block_time REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS subnets (
    netuid INTEGER PRIMARY KEY,
    tempo INTEGER NOT NULL,
    min_allowed_weights INTEGER NOT NULL,
    max_weight_limit REAL NOT NULL,
    weights_rate_limit INTEGER NOT NULL,
    weights_version INTEGER NOT NULL,
    max_validators INTEGER NOT NULL,
    max_uids INTEGER NOT NULL,
    immunity_period INTEGER NOT NULL,
    created_block INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS neurons (
    netuid INTEGER NOT NULL REFERENCES subnets(netuid),
    uid INTEGER NOT NULL,
    hotkey TEXT NOT NULL,
    coldkey TEXT NOT NULL,
    stake REAL NOT NULL,
    registered_block INTEGER NOT NULL,
    last_update INTEGER NOT NULL DEFAULT 0,
    axon_ip TEXT,
    axon_port INTEGER,
    axon_protocol INTEGER,
    PRIMARY KEY (netuid, uid),
    UNIQUE (netuid, hotkey)
)""",
    """CREATE TABLE IF NOT EXISTS weights (
    netuid INTEGER NOT NULL,
    validator_uid INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    weight INTEGER NOT NULL,
    PRIMARY KEY (netuid, validator_uid, uid)
)""",
    """CREATE TABLE IF NOT EXISTS weight_commits (
    netuid INTEGER NOT NULL,
    validator_uid INTEGER NOT NULL,
    commit_block INTEGER NOT NULL,
    reveal_block INTEGER NOT NULL,
    weights TEXT NOT NULL,
    PRIMARY KEY (netuid, validator_uid, commit_block)
)""",
    """CREATE TABLE IF NOT EXISTS epochs (
    netuid INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    block INTEGER NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS bonds (
    netuid INTEGER NOT NULL,
    validator_uid INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    bond REAL NOT NULL,
    PRIMARY KEY (netuid, validator_uid, uid)
)""",
    """CREATE TABLE IF NOT EXISTS epoch_neurons (
    netuid INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    validator INTEGER NOT NULL,
    stake REAL NOT NULL,
    consensus REAL NOT NULL,
    incentive REAL NOT NULL,
    trust REAL NOT NULL,
    dividend REAL NOT NULL,
    weights TEXT NOT NULL,
    PRIMARY KEY (netuid, uid)
)""",
)

# Subnet settings added after the first chain files were written, with their defaults.
ADDED_SUBNET_COLUMNS = (
    ("commit_reveal_period", "INTEGER NOT NULL DEFAULT 0"),
    ("kappa", "REAL NOT NULL DEFAULT 0.5"),
    ("bonds_moving_average", "REAL NOT NULL DEFAULT 0.9"),
)


def upgrade() -> None:
    for statement in TABLES:
        op.execute(statement)
    present = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("subnets")}
    for name, declaration in ADDED_SUBNET_COLUMNS:
        if name not in present:
            op.execute(f"ALTER TABLE subnets ADD COLUMN {name} {declaration}")


def downgrade() -> None:
    for table in (
        "epoch_neurons",
        "bonds",
        "epochs",
        "weight_commits",
        "weights",
        "neurons",
        "subnets",
        "chain",
    ):
        op.drop_table(table)
