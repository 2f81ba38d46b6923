-- A nonce store as SQLiteNonceStore wrote it before its schema came from Alembic migrations.
BEGIN TRANSACTION;
CREATE TABLE nonces (hotkey TEXT NOT NULL, nonce INTEGER NOT NULL, PRIMARY KEY (hotkey, nonce)) WITHOUT ROWID;
INSERT INTO "nonces" VALUES('5Alice',1796556090127342688);
INSERT INTO "nonces" VALUES('5Bob',1796556090127343688);
INSERT INTO "nonces" VALUES('5Alice',1796556090127344688);
CREATE INDEX nonces_by_time ON nonces (nonce);
COMMIT;
