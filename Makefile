PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PROTOS := $(wildcard proto/cityfed/v1/*.proto)

.PHONY: setup setup-spark demo test proto docs lint check check-stubs bench clean screenshots

setup: $(BIN)/cityfed clients/node/node_modules

$(BIN)/cityfed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The Spark store and its tests: pyspark (about 500 MB) and Java 17, which `make setup` leaves
# out so that it stays fast; without them the Spark tests are skipped, saying how to enable them.
setup-spark: setup
	@command -v java >/dev/null || echo "setup-spark: no java on PATH; Spark 4 needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)"
	$(BIN)/pip install --quiet -e '.[dev,spark]'

# The integrator's Node.js client (tests/test_integrator.py runs it against a real gateway).
clients/node/node_modules: clients/node/package-lock.json
	npm ci --prefix clients/node --silent --no-audit --no-fund
	touch $@

demo: setup
	$(BIN)/python scripts/demo.py

test: setup
	$(BIN)/python -m pytest -q

# Regenerates the Python stubs beside the protos; they are committed, never edited by hand.
proto:
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=proto --pyi_out=proto \
		--grpc_python_out=proto $(PROTOS)

# Regenerates docs/configuration.md from NodeConfig and docs/datasets.md from
# federation/query/datasets.py; a test fails when either is stale.
docs: setup
	$(BIN)/python scripts/config_reference.py
	$(BIN)/python scripts/datasets_reference.py

lint: setup
	$(BIN)/ruff check .
	cd proto && ../clients/node/node_modules/.bin/buf lint

# Fails when the committed stubs differ from what the protos generate.
check-stubs: setup
	@rm -rf .stubcheck && mkdir -p .stubcheck
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=.stubcheck --pyi_out=.stubcheck \
		--grpc_python_out=.stubcheck $(PROTOS)
	@for f in .stubcheck/cityfed/v1/*; do \
		cmp -s $$f proto/cityfed/v1/$$(basename $$f) || { echo "stale stub: $$(basename $$f) (run make proto)"; exit 1; }; \
	done
	@rm -rf .stubcheck
	@echo "stubs match the protos"

check: check-stubs lint test

# A PNG of each page of `cityfed console` in docs/console/, taken by Debian's Chromium against
# a small generated region (about 30 s; apt-get install chromium first).
screenshots: setup
	$(BIN)/python scripts/console_screenshots.py

bench: setup
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) .stubcheck .pytest_cache build *.egg-info
