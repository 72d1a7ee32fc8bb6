# Two commands a newcomer needs: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# System tools the tests use for real: the Mosquitto broker (and mosquitto_passwd), openssl
# for the TLS test CA, systemd-analyze to verify the unit, Chromium for the screen's browser
# tests (Playwright drives Debian's chromium; no browser download), PostgreSQL for the department's
# database (the tests start a throwaway cluster of their own). Installed where missing (Debian).
TEST_TOOLS := mosquitto:mosquitto mosquitto_passwd:mosquitto openssl:openssl systemd-analyze:systemd \
	chromium:chromium pg_ctlcluster:postgresql

.PHONY: demo test venv lint clean test-tools

$(BIN)/alprd: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/alprd

# until Ctrl-C: the screen (address and login printed) shows the reads and the demo hotlist's alerts
demo: venv
	$(BIN)/alprd demo --frames 0

test-tools:
	@missing=""; for pair in $(TEST_TOOLS); do tool=$${pair%%:*}; pkg=$${pair##*:}; \
	  PATH="$$PATH:/usr/sbin" command -v $$tool >/dev/null || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# `timeout`: a thread left running by a failed test must not keep CI waiting (the suite takes ~3-4 min on 2 cores)
test: venv test-tools lint
	timeout --kill-after=30 900 $(BIN)/pytest

lint: venv
	$(BIN)/ruff check alprd tests scripts

clean:
	rm -rf $(VENV) state
