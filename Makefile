# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test sysdeps venv typecheck unit bench clean vcsim

# Create .venv and install upsagent with the extras tests and demo need (idempotent).
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# NUT's real programs are the peers the tests talk to (Debian packages), and OpenSSH's
# sshd the ssh backend's.
sysdeps:
	@if dpkg -s nut-client nut-server >/dev/null 2>&1; then :; else \
	  echo "installing NUT (nut-client, nut-server) for the interoperability tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nut-client nut-server; \
	fi
	@if dpkg -s openssh-server >/dev/null 2>&1; then :; else \
	  echo "installing OpenSSH's server (openssh-server) for the ssh backend's tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server; \
	fi
	@if dpkg -s golang-go golang-github-vmware-govmomi-dev >/dev/null 2>&1; then :; else \
	  echo "installing Go and govmomi (golang-go, golang-github-vmware-govmomi-dev) for the vCenter simulator"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-github-vmware-govmomi-dev; \
	fi

# The vCenter simulator of the vsphere tests (tests/vcsim/main.go on Debian's govmomi),
# built offline into build/vcsim/<hash of its sources>/ and reused while they are unchanged.
vcsim: sysdeps venv
	$(BIN)/python -c 'from tests import vcsimext; print(vcsimext.binary())'

demo: venv
	$(BIN)/upsagent demo

# mypy checks upsagent as it is installed, upsagent.drivers included, though the drivers
# live in drivers/ (setup.cfg's package_dir). mypy knows no package_dir, and the editable
# install maps upsagent.drivers to drivers/ with an import hook
# (__editable___upsagent_*_finder.py), which mypy does not run. setuptools' other
# editable modes do not help: "compat" can only put whole folders on sys.path, and
# "strict" installs a tree of links under build/ that misses modules added after the
# install and that tests run from the tree never see (the tree's upsagent/, first on
# sys.path, has no drivers/). So mypy gets the installed layout from a staging folder,
# made afresh each run, whose one entry is the link upsagent/drivers -> drivers/ (not in
# git: the repository keeps no symlink); mypy_path = . finds the rest. drivers/ is
# checked as upsagent.drivers, its errors reported as $(TYPECHECK)/upsagent/drivers/...,
# paths that open the files in drivers/.
TYPECHECK := build/typecheck

typecheck: venv
	rm -rf $(TYPECHECK)
	mkdir -p $(TYPECHECK)/upsagent
	ln -s ../../../drivers $(TYPECHECK)/upsagent/drivers
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy upsagent $(TYPECHECK)/upsagent/drivers

test: sysdeps typecheck vcsim
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: sysdeps venv
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache
