# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test sysdeps venv typecheck unit bench clean

# Create .venv and install upsagent with the extras tests and demo need (idempotent).
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# NUT's real programs are the peers the tests talk to (Debian packages).
sysdeps:
	@if dpkg -s nut-client nut-server >/dev/null 2>&1; then :; else \
	  echo "installing NUT (nut-client, nut-server) for the interoperability tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nut-client nut-server; \
	fi

demo: venv
	$(BIN)/upsagent demo

typecheck: venv
	$(BIN)/mypy upsagent

test: sysdeps venv
	$(BIN)/mypy upsagent
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: sysdeps venv
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache
