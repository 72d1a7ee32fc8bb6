# Two commands a newcomer needs: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test venv lint bench clean

$(BIN)/alprd: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/alprd

demo: venv
	$(BIN)/alprd demo

# Mosquitto is the real broker the MQTT tests talk to; install it where missing (Debian).
test: venv
	@command -v mosquitto >/dev/null || ls /usr/sbin/mosquitto >/dev/null 2>&1 || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null)
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check alprd tests scripts

clean:
	rm -rf $(VENV) state
