-- A local chain as LocalChain wrote it before its schema came from Alembic migrations (a dump:
-- two subnets, one under commit-reveal; registrations, axons, revealed weights, a pending
-- commitment, epochs run, bonds and the last epoch's figures).
BEGIN TRANSACTION;
CREATE TABLE bonds (
    netuid INTEGER NOT NULL,
    validator_uid INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    bond REAL NOT NULL,
    PRIMARY KEY (netuid, validator_uid, uid)
);
INSERT INTO "bonds" VALUES(1,0,2,0.75);
INSERT INTO "bonds" VALUES(1,0,3,8.57142857142857095276e-01);
INSERT INTO "bonds" VALUES(1,0,4,1.0);
INSERT INTO "bonds" VALUES(1,1,2,0.25);
INSERT INTO "bonds" VALUES(1,1,3,1.42857142857142876968e-01);
CREATE TABLE chain (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    genesis_time REAL NOT NULL,
    block_time REAL NOT NULL
);
INSERT INTO "chain" VALUES(0,1.79655607968309950824e+09,0.2);
CREATE TABLE epoch_neurons (
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
);
INSERT INTO "epoch_neurons" VALUES(1,0,1,30.0,0.0,0.0,1.0,0.9,'{"2": 0.16666666666666666, "3": 0.3333333333333333, "4": 0.5}');
INSERT INTO "epoch_neurons" VALUES(1,1,1,20.0,0.0,0.0,1.66666666666666657414e-01,0.1,'{"2": 0.08333333333333333, "3": 0.08333333333333333, "5": 0.8333333333333334}');
INSERT INTO "epoch_neurons" VALUES(1,2,0,0.0,1.66666666666666657414e-01,0.2,0.0,0.0,'{}');
INSERT INTO "epoch_neurons" VALUES(1,3,0,0.0,3.33333333333333314829e-01,0.35,0.0,0.0,'{}');
INSERT INTO "epoch_neurons" VALUES(1,4,0,0.0,0.5,0.45,0.0,0.0,'{}');
INSERT INTO "epoch_neurons" VALUES(1,5,0,0.0,0.0,0.0,0.0,0.0,'{}');
CREATE TABLE epochs (
    netuid INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    block INTEGER NOT NULL
);
INSERT INTO "epochs" VALUES(1,4,13);
CREATE TABLE neurons (
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
);
INSERT INTO "neurons" VALUES(1,0,'hotkey-0','coldkey-0',30.0,1,13,'127.0.0.1',9000,4);
INSERT INTO "neurons" VALUES(1,1,'hotkey-1','coldkey-1',25.0,1,4,'127.0.0.1',9001,4);
INSERT INTO "neurons" VALUES(1,2,'hotkey-2','coldkey-0',0.0,2,0,'127.0.0.1',9002,4);
INSERT INTO "neurons" VALUES(1,3,'hotkey-3','coldkey-1',0.0,2,0,'127.0.0.1',9003,4);
INSERT INTO "neurons" VALUES(1,4,'hotkey-4','coldkey-0',0.0,3,0,'127.0.0.1',9004,4);
INSERT INTO "neurons" VALUES(1,5,'hotkey-5','coldkey-1',0.0,3,0,'127.0.0.1',9005,4);
INSERT INTO "neurons" VALUES(2,0,'plain-0','coldkey-p',10.0,4,4,NULL,NULL,NULL);
INSERT INTO "neurons" VALUES(2,1,'plain-1','coldkey-p',0.0,4,0,NULL,NULL,NULL);
INSERT INTO "neurons" VALUES(2,2,'plain-2','coldkey-p',0.0,4,0,NULL,NULL,NULL);
CREATE TABLE subnets (
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
, commit_reveal_period INTEGER NOT NULL DEFAULT 0, kappa REAL NOT NULL DEFAULT 0.5, bonds_moving_average REAL NOT NULL DEFAULT 0.9);
INSERT INTO "subnets" VALUES(1,3,1,1.0,0,0,2,8,0,1,1,0.5,0.9);
INSERT INTO "subnets" VALUES(2,360,1,1.0,0,0,64,256,4096,1,0,0.5,0.9);
CREATE TABLE weight_commits (
    netuid INTEGER NOT NULL,
    validator_uid INTEGER NOT NULL,
    commit_block INTEGER NOT NULL,
    reveal_block INTEGER NOT NULL,
    weights TEXT NOT NULL,
    PRIMARY KEY (netuid, validator_uid, commit_block)
);
INSERT INTO "weight_commits" VALUES(1,0,13,16,'[[2, 1], [5, 3]]');
CREATE TABLE weights (
    netuid INTEGER NOT NULL,
    validator_uid INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    weight INTEGER NOT NULL,
    PRIMARY KEY (netuid, validator_uid, uid)
);
INSERT INTO "weights" VALUES(2,0,1,100);
INSERT INTO "weights" VALUES(2,0,2,200);
INSERT INTO "weights" VALUES(1,0,2,10);
INSERT INTO "weights" VALUES(1,0,3,20);
INSERT INTO "weights" VALUES(1,0,4,30);
INSERT INTO "weights" VALUES(1,1,2,5);
INSERT INTO "weights" VALUES(1,1,3,5);
INSERT INTO "weights" VALUES(1,1,5,50);
COMMIT;
