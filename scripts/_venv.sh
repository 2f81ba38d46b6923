# Sourced by the scripts here: create .venv with Python >= 3.10 and install the project into it.
# Usage: . scripts/_venv.sh REQUIREMENTS_FILE
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "Dojo needs Python 3.10 or newer; set PYTHON=/path/to/python3.x" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
echo "installing $1 into .venv"
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -r "$1" -e . >.venv/pip.log 2>&1; then
  grep -v "is neither a file nor a directory" .venv/pip.log >&2
  echo "installing $1 failed (log: .venv/pip.log)" >&2
  exit 1
fi
