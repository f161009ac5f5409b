# Two commands do everything on a fresh machine:
#   make demo   - the whole experiment on the embedded default (in-process EVM, file store)
#   make test   - the type check (mypy), the contract's Solidity tests (forge) and static
#                 analysis (slither), and the Python test suite (needs Node for anvil and
#                 the compiler check)
# Both create the venv and install what they need, once.

VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
EXTRAS_STAMP := $(VENV)/.installed-extras
NPM_STAMP := node_modules/.installed
OUT    ?= demo-out
# Test modules spread over this many processes (pytest-xdist; a module stays on one); three
# keep two cores busy while tests wait on chains, agents and daemons.
TEST_WORKERS ?= 3
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: demo test test-fast checks mypy compile clean chromium forge-test slither

demo: $(STAMP)
	$(VENV)/bin/colearn demo --out $(OUT)

test: $(STAMP) $(EXTRAS_STAMP) $(NPM_STAMP) chromium
	$(MAKE) --no-print-directory -j3 --output-sync checks
	$(PYTEST)

# The checks that need no Python test process, side by side (each mostly one core).
checks: mypy forge-test slither

mypy: $(STAMP) $(EXTRAS_STAMP)
	$(PY) -m mypy

test-fast: $(STAMP) $(EXTRAS_STAMP) $(NPM_STAMP) chromium
	$(MAKE) --no-print-directory -j2 --output-sync mypy forge-test
	$(PYTEST) -m "not slow"

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

$(PY):
	python3 -m venv $(VENV)

# torch first, pinned: a torch range asked for before it is installed pulls CUDA builds.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[torch,dev]"
	touch $@

# Every learner kind (Keras, scikit-learn, XGBoost, DP, ONNX, mnist1d) and what colearn's
# examples import: the tests use them all.
$(EXTRAS_STAMP): $(STAMP)
	$(PIP) install --quiet -e ".[torch,keras,sklearn,xgboost,dp,onnx,data,colearn-examples,dev]"
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The contract's Solidity tests (contracts/test/*.t.sol: unit, gas bounds, fuzz, invariant) with
# Foundry's forge from npm; foundry.toml points forge at npm's solc (scripts/solc-forge.js).
forge-test: $(NPM_STAMP)
	node_modules/.bin/forge test --offline

# Slither (static analysis) on Hardhat's build of contracts/ (the shipped sources only), in
# its own venv. It exits non-zero on any finding. Excluded by design, everywhere:
#   timestamp             every deadline is block time, as PROTOCOL.md states (a proposer can
#                         shift it by seconds, against timeouts of 1 s to 30 days);
#   assembly              memory-safe blocks that hash calldata and scratch memory (the learner
#                         list, EIP-712 structs) to keep relayed batches within their gas bounds;
#   cyclomatic-complexity createExperiment checks every parameter, one refusal each.
# Two findings are suppressed where they occur, with the reason next to them
# (contracts/CollectiveLearning.sol: arbitrary-send-erc20 on a signed join's deposit,
# uninitialized-state on a mapping written through a storage reference).
# Slither 0.11 prints "Impossible to generate IR" for the three functions of OpenZeppelin's
# ReentrancyGuardTransient (transient storage through TransientSlot): a limit of Slither, not
# a finding; the guarded functions also follow checks-effects-interactions.
SLITHER_VENV  := .venv-slither
SLITHER_STAMP := $(SLITHER_VENV)/.installed
SLITHER_BUILD := $(CURDIR)/$(SLITHER_VENV)/hardhat

$(SLITHER_STAMP):
	python3 -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SLITHER_VENV)/bin/python -m pip install --quiet "slither-analyzer>=0.11,<0.12"
	touch $@

# A fresh build each time: a stale build-info left beside the new one would be analysed too.
slither: $(NPM_STAMP) $(SLITHER_STAMP)
	rm -rf $(SLITHER_BUILD)
	COLEARN_HARDHAT_OUT=$(SLITHER_BUILD) npx hardhat compile --quiet
	$(SLITHER_VENV)/bin/slither . --compile-force-framework hardhat --hardhat-ignore-compile \
		--hardhat-cache-directory $(SLITHER_BUILD)/cache --hardhat-artifacts-directory $(SLITHER_BUILD)/artifacts \
		--filter-paths node_modules --exclude timestamp,assembly,cyclomatic-complexity

clean:
	rm -rf $(VENV) node_modules $(OUT) .pytest_cache forge-out forge-cache $(SLITHER_VENV)
