# The two commands of the README. Everything else is behind them.
.PHONY: up test setup

setup:
	@scripts/setup.sh

## Set everything up and run the main job: broker, simulated stream, JupyterLab with the tutorials.
up: setup
	@.venv/bin/workbench up

## Run the whole test suite (lint, types, tests on the real broker).
test: setup
	@scripts/check.sh
