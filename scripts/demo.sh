#!/usr/bin/env bash
# The main job on its embedded default: bash scripts/demo.sh [refcomp demo options]
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=data . scripts/_venv.sh
exec .venv/bin/refcomp demo "$@"
