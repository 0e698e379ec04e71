# The two set-up commands of the README: `make run` and `make test`.
# Each creates .venv and installs the project into it when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test demo bench lint schemas clean browser neighbours

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/incident-intel run

# The dashboard test drives Debian's Chromium. Under CI (CI=true) or with
# INSTALL_BROWSER=1 it is installed when missing; elsewhere that test skips.
CHROMIUM ?= /usr/bin/chromium
browser:
	@if [ ! -x $(CHROMIUM) ] && { [ "$$CI" = true ] || [ -n "$$INSTALL_BROWSER" ]; }; then \
	  echo "installing Debian's chromium for the dashboard test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# The receivers' tests start Debian's Prometheus and Alertmanager. Under CI (CI=true) or
# with INSTALL_NEIGHBOURS=1 they are installed when missing; elsewhere those tests skip.
PROMETHEUS ?= /usr/bin/prometheus
ALERTMANAGER ?= /usr/bin/prometheus-alertmanager
neighbours:
	@if { [ ! -x $(PROMETHEUS) ] || [ ! -x $(ALERTMANAGER) ]; } && \
	    { [ "$$CI" = true ] || [ -n "$$INSTALL_NEIGHBOURS" ]; }; then \
	  echo "installing Debian's prometheus and prometheus-alertmanager for the receivers' tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends prometheus prometheus-alertmanager >/dev/null; \
	fi

test: $(STAMP) browser neighbours
	@# pytest exits 5 when it collected no test: that is a failure of the suite's layout, not a pass.
	$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

demo: $(STAMP)
	$(BIN)/incident-intel demo

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

schemas: $(STAMP)
	$(BIN)/incident-intel topics schemas

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
