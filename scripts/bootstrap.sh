#!/usr/bin/env bash
# Create .venv with a Python >= 3.12 found on this machine and install the project.
# Looks on PATH first, then in pyenv; re-installs only when pyproject.toml changed.
# With --find-python, only prints the path of that Python.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}

is_new_enough() {
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null
}

find_python() {
  local candidate
  for candidate in python3.14 python3.13 python3.12 python3 python; do
    if command -v "$candidate" >/dev/null && is_new_enough "$(command -v "$candidate")"; then
      command -v "$candidate"
      return 0
    fi
  done
  if command -v pyenv >/dev/null; then
    local root version
    root=$(pyenv root)
    for version in $(pyenv versions --bare 2>/dev/null | sort -rV); do
      candidate="$root/versions/$version/bin/python"
      if [ -x "$candidate" ] && is_new_enough "$candidate"; then
        echo "$candidate"
        return 0
      fi
    done
  fi
  return 1
}

# A venv whose Python still runs (its base may have been removed) and has pip (a
# failed 'python -m venv' leaves one without).
venv_works() {
  is_new_enough "$VENV/bin/python" && "$VENV/bin/python" -m pip --version >/dev/null 2>&1
}

no_python() {
  echo "error: torchgeo-simclr needs Python >= 3.12, and none was found on PATH" \
    "(python3.14 ... python3) or in pyenv; install one (e.g. 'pyenv install 3.12')" \
    "and run this again." >&2
  exit 1
}

# --find-python: print the Python >= 3.12 this script would use, and stop.
if [ "${1:-}" = "--find-python" ]; then
  find_python || no_python
  exit 0
fi

stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && venv_works; then
  exit 0
fi

# A venv made without pip (uv, --without-pip) gets pip rather than being replaced.
if ! venv_works && is_new_enough "$VENV/bin/python"; then
  "$VENV/bin/python" -m ensurepip --upgrade >/dev/null 2>&1 || true
fi

if ! venv_works; then
  python=$(find_python) || no_python
  echo "Creating $VENV with $python ($("$python" --version))"
  rm -rf "$VENV"
  if ! "$python" -m venv "$VENV"; then
    rm -rf "$VENV"
    echo "error: '$python -m venv $VENV' failed; on Debian or Ubuntu install the" \
      "venv module of that Python (e.g. 'apt install python3.12-venv') and run this" \
      "again." >&2
    exit 1
  fi
fi

"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
rm -f "$VENV"/.installed-*
touch "$stamp"
echo "Installed torchgeo-simclr into $VENV"
