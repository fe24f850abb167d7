# Quick start: `make demo` (a simulated shop shift), `make test` (the whole suite).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint typecheck demo clean firmware

setup:
	@tools/setup.sh

lint: setup
	$(PY) -m ruff check .

typecheck: setup
	$(PY) -m mypy

test: setup lint typecheck
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/sim demo $(if $(DEMO_ONCE),--once,)

# The handheld's deployable bundle: build/firmware-<version>/ (README: "Putting the firmware on a handheld")
firmware: setup
	$(PY) tools/build_firmware.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build typings
