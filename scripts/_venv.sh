# Sourced by scripts/*.sh: create (or reuse) .venv and install refcomp into it.
# Usage: EXTRAS=test . scripts/_venv.sh
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip "setuptools>=77" wheel "cffi>=1.16"
# --no-build-isolation: reuse the venv's setuptools/cffi instead of fetching them on each run.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation -e ".${EXTRAS:+[$EXTRAS]}"
