#!/usr/bin/env bash
# Install Label Studio (the version dojo/label_studio_server.py pins) into .label-studio/venv,
# a virtual environment of its own inside the repository's folder: its Django and its pins
# never meet ours. Idempotent: a second run with the same version does nothing.
# Takes a few minutes and several hundred MB the first time. PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=$(sed -n 's/^VERSION = "\(.*\)"$/\1/p' dojo/label_studio_server.py)
VENV=.label-studio/venv
MARKER=$VENV/.dojo-label-studio-version
if [ -x "$VENV/bin/label-studio" ] && [ "$(cat "$MARKER" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
PYTHON=${PYTHON:-python3}
echo "installing Label Studio $VERSION into $VENV (a few minutes, once)"
started=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check "label-studio==$VERSION" >"$VENV/pip.log" 2>&1; then
  grep -v "is neither a file nor a directory" "$VENV/pip.log" | tail -n 20 >&2
  echo "installing Label Studio failed (log: $VENV/pip.log)" >&2
  exit 1
fi
echo "$VERSION" >"$MARKER"
echo "Label Studio $VERSION installed in $(( $(date +%s) - started ))s, $(du -sh "$VENV" | cut -f1)"
