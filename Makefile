# Two commands do everything on a fresh machine:
#   make demo   - the whole experiment on the embedded default (in-process EVM, file store)
#   make test   - the type check (mypy) and the test suite (needs Node for anvil and the
#                 compiler check)
# Both create the venv and install what they need, once.

VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
EXTRAS_STAMP := $(VENV)/.installed-extras
NPM_STAMP := node_modules/.installed
OUT    ?= demo-out

.PHONY: demo test test-fast compile clean chromium forge-test slither

demo: $(STAMP)
	$(VENV)/bin/colearn demo --out $(OUT)

test: $(STAMP) $(EXTRAS_STAMP) $(NPM_STAMP) chromium
	$(PY) -m mypy
	$(PY) -m pytest

test-fast: $(STAMP) $(EXTRAS_STAMP) $(NPM_STAMP) chromium
	$(PY) -m mypy
	$(PY) -m pytest -m "not slow"

# Debian's headless browser and its driver, for the explorer's browser test (once: only
# when missing; CI runs as root, elsewhere sudo is used).
chromium:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; \
	fi

compile: $(NPM_STAMP)
	node scripts/compile.js

# The contract's Solidity tests (contracts/test/*.t.sol: unit, gas bounds, fuzz, invariant) with
# Foundry's forge from npm; foundry.toml points forge at npm's solc (scripts/solc-forge.js).
forge-test: $(NPM_STAMP)
	node_modules/.bin/forge test --offline

# Slither (static analysis) on Hardhat's build of contracts/, in its own venv; the detectors
# excluded by design are listed and explained in slither.config.json. Exits non-zero on any
# other finding.
SLITHER_VENV  := .venv-slither
SLITHER_STAMP := $(SLITHER_VENV)/.installed

$(SLITHER_STAMP):
	python3 -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SLITHER_VENV)/bin/python -m pip install --quiet "slither-analyzer>=0.11,<0.12"
	touch $@

slither: $(NPM_STAMP) $(SLITHER_STAMP)
	COLEARN_HARDHAT_OUT=$(CURDIR)/.venv-slither/hardhat npx hardhat compile --quiet
	COLEARN_HARDHAT_OUT=$(CURDIR)/.venv-slither/hardhat $(SLITHER_VENV)/bin/slither . --hardhat-ignore-compile \
		--hardhat-cache-directory .venv-slither/hardhat/cache --hardhat-artifacts-directory .venv-slither/hardhat/artifacts \
		--config-file slither.config.json

$(PY):
	python3 -m venv $(VENV)

# torch first, pinned: a torch range asked for before it is installed pulls CUDA builds.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[torch,dev]"
	touch $@

# Every learner kind (Keras, scikit-learn, DP, ONNX, mnist1d): the tests use them all.
$(EXTRAS_STAMP): $(STAMP)
	$(PIP) install --quiet -e ".[torch,keras,sklearn,dp,onnx,data,dev]"
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

clean:
	rm -rf $(VENV) node_modules $(OUT) .pytest_cache forge-out forge-cache $(SLITHER_VENV)
