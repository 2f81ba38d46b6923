#!/usr/bin/env bash
# Install Dojo into .venv and run a local subnet: chain, two miners and a validator.
# Extra arguments go to `dojo localnet up` (for example --duration 60 or --miners 4).
. "$(dirname "$0")/_venv.sh" requirements.txt
exec .venv/bin/dojo localnet up "$@"
