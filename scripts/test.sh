#!/usr/bin/env bash
# Install Dojo with its test tools into .venv, make sure the services the tests use are
# there (Debian's chromium for the browser tests, HAProxy for the platform's replicas, the
# PostgreSQL server on 127.0.0.1:5432,
# pm2 when npm is there), lint, check formatting, types and dead code, and run the whole test suite.
# Extra arguments go to pytest, which runs the tests in one worker per core (pytest-xdist).
. "$(dirname "$0")/_venv.sh" requirements-dev.txt

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser tests"
  { as_root apt-get update -qq && as_root apt-get install -y -qq chromium >/dev/null; } \
    || echo "could not install chromium: the browser tests will skip" >&2
fi
if ! command -v pm2 >/dev/null && command -v npm >/dev/null; then
  echo "installing pm2 for the pm2 tests"
  { npm install -g -s pm2@7.0.4 >/dev/null 2>&1 || as_root npm install -g -s pm2@7.0.4 >/dev/null; } \
    || echo "could not install pm2: the pm2 tests will skip" >&2
fi
if ! command -v haproxy >/dev/null && command -v apt-get >/dev/null; then
  echo "installing HAProxy for the tests of the platform's replicas behind a load balancer"
  { as_root apt-get update -qq && as_root apt-get install -y -qq haproxy >/dev/null; } \
    || echo "could not install HAProxy: the replica tests will skip" >&2
fi
if command -v pg_ctlcluster >/dev/null && ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "starting the PostgreSQL server"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start \
    || echo "could not start PostgreSQL: the PostgreSQL tests will skip" >&2
fi

# Label Studio, for the miner's Label Studio backend tests, in its own venv (.label-studio/venv).
scripts/label_studio.sh || echo "could not install Label Studio: its tests will skip" >&2

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m mypy
.venv/bin/vulture
# Most of the suite's time is spent waiting on servers and subprocesses: one worker per core
# (pytest-xdist), each test file whole on one worker, so that a server a file's tests share
# (chromium) starts once for the file, and the files of an outside server started once per
# session (Label Studio, the HAProxy replicas) go to one worker together, so that it starts
# once (tests/_session_servers.py; pytest-xdist 3.8's own --dist loadgroup cannot group under
# pytest 9, whose node ids it no longer rewrites); the files in the order tests/conftest.py
# gives them, the longest first. Extra arguments come after: `-n 0` runs in one process.
# The suite also measures line coverage of template, commons and dojo in the test processes
# (settings in pyproject.toml) and fails under the floor, 90% (the whole suite reached 91.5% when
# the floor was set). A run of part of the suite adds `--no-cov`.
exec .venv/bin/python -m pytest -n auto --dist loadfile --no-loadscope-reorder --cov --cov-report= --cov-fail-under=90 "$@"
