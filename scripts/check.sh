#!/usr/bin/env bash
# The one strict check: lint, types, then every test against the real services.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
echo "check: ruff"; "$bin/ruff" check workbench tests
echo "check: mypy"; "$bin/mypy"
echo "check: pytest"; "$bin/pytest" --durations=15 "$@"
