# Two commands do everything on a fresh machine:
#   make demo   - the whole experiment on the embedded default (in-process EVM, file store)
#   make test   - the test suite (needs Node for anvil and the compiler check)
# Both create the venv and install what they need, once.

VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
OUT    ?= demo-out

.PHONY: demo test test-fast compile clean

demo: $(STAMP)
	$(VENV)/bin/colearn demo --out $(OUT)

test: $(STAMP) $(NPM_STAMP)
	$(PY) -m pytest

test-fast: $(STAMP) $(NPM_STAMP)
	$(PY) -m pytest -m "not slow"

compile: $(NPM_STAMP)
	node scripts/compile.js

$(PY):
	python3 -m venv $(VENV)

# torch first, pinned: a torch range asked for before it is installed pulls CUDA builds.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[torch,dev]"
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) node_modules $(OUT) .pytest_cache
