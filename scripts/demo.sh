#!/usr/bin/env bash
# Install Dojo into .venv and run a whole subnet on this machine: a local chain, a worker
# platform, the synthetic API, a validator, three miners and a team of simulated workers
# for each (two honest teams, one random), with a live status view and an invite link to
# rank tasks in the browser; Ctrl-C stops it all. Extra arguments go to `dojo localnet up`
# (for example --duration 300 or --person-window 30).
. "$(dirname "$0")/_venv.sh" requirements.txt
exec .venv/bin/dojo localnet up "$@"
