#!/usr/bin/env bash
# Autoupdater for pm2 deployments of the validator (or miner):
#   pm2 start run.sh --interpreter bash --name dojo-autoupdater -- --wallet.name coldkey ... --neuron.type validator
# Starts the neuron under pm2 with the flags given, then every UPDATE_INTERVAL seconds
# (default 1200) fetches the current branch; when it moved, fast-forwards, reinstalls and
# restarts the neuron. A failed update leaves the running neuron as it was.
set -uo pipefail
cd "$(dirname "$0")"

UPDATE_INTERVAL=${UPDATE_INTERVAL:-1200}
neuron_type=validator
prev=""
for arg in "$@"; do
  [ "$prev" = "--neuron.type" ] && neuron_type=$arg
  prev=$arg
done
name="dojo-$neuron_type"
script="main_$neuron_type.py"
python=".venv/bin/python"
[ -x "$python" ] || python=$(command -v python3)

pm2 describe "$name" >/dev/null 2>&1 || pm2 start "$script" --name "$name" --interpreter "$python" -- "$@"

branch=$(git rev-parse --abbrev-ref HEAD)
while true; do
  sleep "$UPDATE_INTERVAL"
  git fetch --quiet origin "$branch" || { echo "fetch failed; will retry"; continue; }
  if [ "$(git rev-parse HEAD)" != "$(git rev-parse "origin/$branch")" ]; then
    echo "update found on $branch: $(git rev-parse --short "origin/$branch")"
    if git merge --ff-only --quiet "origin/$branch" && "$python" -m pip install -q -r requirements.txt -e .; then
      pm2 restart "$name" --update-env
    else
      echo "update failed; the running neuron is unchanged"
    fi
  fi
done
