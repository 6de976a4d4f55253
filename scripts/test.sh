#!/usr/bin/env bash
# The whole test suite: bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test . scripts/_venv.sh
# The HTML report's tests open it in a real headless Chromium (tests/_support/browser.py; under
# CI=true a missing one fails them). Install Debian's when it is missing and we can: as root, with apt.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (apt-get; log: .venv/apt-chromium.log)" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
            >.venv/apt-chromium.log 2>&1; then
        tail -n 20 .venv/apt-chromium.log >&2
        echo "scripts/test.sh: apt-get install chromium failed (the report tests will say so)" >&2
    fi
fi
# C library under AddressSanitizer + UBSan (KERNELS): every ISA path vs naive references.
if command -v make >/dev/null 2>&1 && command -v "${CC:-cc}" >/dev/null 2>&1; then
    echo "building csrc under -fsanitize=address,undefined and running its test driver" >&2
    if ! make -s -C csrc BUILD=build/ci sanitize >.venv/sanitize.log 2>&1; then
        cat .venv/sanitize.log >&2
        echo "scripts/test.sh: make -C csrc sanitize failed" >&2
        exit 1
    fi
fi
status=0
.venv/bin/python -m pytest -q "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "scripts/test.sh: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
