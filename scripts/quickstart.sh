#!/usr/bin/env bash
# One command on a fresh machine: install everything, then run RAR on 200 real MMLU questions.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/rar run --dataset mmlu \
    --subjects high_school_psychology,high_school_geography --limit 200 --seed 0 "$@"
