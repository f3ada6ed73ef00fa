# shellcheck shell=bash
# Sourced (from the repo root) by scripts/test and scripts/dev.
# Ensures .venv exists with Python >= 3.11 and that `pip install -e ".[dev]"` has run for the
# current pyproject.toml (stamp: sha256 of pyproject.toml in .venv/). MAINTFLOW_REINSTALL=1 forces it.

_py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

if [ ! -x .venv/bin/python ] || ! _py_ok .venv/bin/python; then
  _py=""
  for _cand in python3.13 python3.12 python3.11 python3; do
    if command -v "$_cand" >/dev/null 2>&1 && _py_ok "$_cand"; then _py="$_cand"; break; fi
  done
  if [ -z "$_py" ]; then
    echo "error: Python >= 3.11 is required (tried python3.13, python3.12, python3.11, python3)." >&2
    echo "  Debian/Ubuntu: apt-get install python3 python3-venv; macOS: brew install python@3.12" >&2
    exit 1
  fi
  if [ -e .venv ]; then echo "removing unusable .venv" >&2; rm -rf .venv; fi
  echo "creating .venv with $(command -v "$_py") ($("$_py" -V 2>&1))" >&2
  "$_py" -m venv .venv || {
    echo "error: '$_py -m venv' failed (Debian/Ubuntu: apt-get install python3-venv)" >&2
    rm -rf .venv
    exit 1
  }
fi

_stamp=.venv/.maintflow-pyproject.sha256
_want="$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')"
if [ "${MAINTFLOW_REINSTALL:-}" = 1 ] || [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
  echo "installing: pip install -e \".[dev]\" (new venv, pyproject.toml changed, or MAINTFLOW_REINSTALL=1)" >&2
  rm -f "$_stamp"
  .venv/bin/python -m pip install --disable-pip-version-check -q -e ".[dev]"
  echo "$_want" >"$_stamp"
fi
unset _py _cand _stamp _want
