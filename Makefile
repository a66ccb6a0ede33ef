# The two commands of the README: `make run` and `make test`. Both install what is missing first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
# Where `make run` listens: loopback only, unless told (`make run HOST=0.0.0.0`). Not taken from
# the environment (no `?=`): tcsh exports HOST as the machine's name.
HOST   := 127.0.0.1
# Where `make cluster` writes its processes' logs.
CLUSTER_DIR ?= .cluster
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages the scale-out deployment runs on (`make cluster`, and the topology tests):
# Redis, PostgreSQL and nginx. The suite adds Chromium for the page and espeak-ng for speech; and
# npm (unless one is on PATH already), which fetches axe-core for the page tests.
CLUSTER_PACKAGES := redis-server postgresql nginx
TEST_PACKAGES := $(CLUSTER_PACKAGES) chromium espeak-ng

.PHONY: run test lint install install-dev system-packages cluster-packages cluster bench

run: install  ## install everything, then serve http://$(HOST):$(PORT) and print the operator's sign-in link
	$(PY) manage.py migrate --noinput
	$(PY) manage.py serve --host $(HOST) --port $(PORT) --sign-in-link

test: install-dev system-packages  ## install everything, then lint, type-check and run the whole suite
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

cluster: install cluster-packages  ## PostgreSQL, Redis, two web processes behind nginx on http://$(HOST):$(PORT), two workers
	$(PY) manage.py cluster --host $(HOST) --port $(PORT) --dir $(CLUSTER_DIR)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

install: $(VENV)/.stamp-runtime
install-dev: $(VENV)/.stamp-dev

# From the lock files only: the whole dependency tree, each file checked against its hash.
$(VENV)/.stamp-runtime: requirements.lock
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes -r requirements.lock
	touch $@

$(VENV)/.stamp-dev: $(VENV)/.stamp-runtime requirements-dev.lock
	$(PY) -m pip install -q --require-hashes -r requirements-dev.lock
	touch $@

# Edit requirements*.txt, then `make lock`: versions already in a lock stay where the resolver
# allows. The dev lock is constrained to the runtime one, so the two agree on shared packages.
# Universal locks (every platform, Python 3.11 and later): the Docker image runs Python 3.12.
UV_COMPILE := $(VENV)/bin/uv pip compile --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock"

.PHONY: lock
lock: install-dev  ## regenerate requirements*.lock from requirements*.txt
	$(UV_COMPILE) requirements.txt -o requirements.lock
	$(UV_COMPILE) requirements-dev.txt -c requirements.lock -o requirements-dev.lock
	$(UV_COMPILE) --no-deps requirements-gpu.txt -o requirements-gpu.lock

# Only the missing packages, only what they need: no recommended packages, no upgrade of what is
# installed. Debian's chromium registers itself as an x-www-browser alternative (see the README).
# $(1): Debian packages; $(2): commands installed (as the package of their name) unless on PATH.
define apt_install
	@missing=""; \
	for pkg in $(1); do \
		dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
	done; \
	for tool in $(2); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends --no-upgrade $$missing; \
	fi
endef

system-packages:
	$(call apt_install,$(TEST_PACKAGES),npm)

cluster-packages:
	$(call apt_install,$(CLUSTER_PACKAGES),)

bench: install-dev system-packages  ## every benchmark of bench/, one after another
	for script in bench/*.py; do $(PY) $$script || exit 1; done
