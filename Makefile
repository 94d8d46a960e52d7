# Every target creates and reuses .venv by itself; nothing else needs installing first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Extra bytes of arguments for `make bench`, e.g. make bench BENCH_ARGS="--quick"
BENCH_ARGS ?=

.PHONY: demo test test-aioboto3 bench lint typecheck clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,async]'
	touch $(STAMP)

# aioboto3 pins an aiobotocore, and so a botocore, older than the main venv's: it gets a venv of its
# own. Only pytest is added (tests/conftest.py's plugins import nothing else at collection time).
# constraints-aioboto3.txt is `pip freeze` of the first successful install; later installs use it.
AIO_VENV := .venv-aioboto3
AIO_BIN := $(AIO_VENV)/bin
AIO_STAMP := $(AIO_VENV)/.installed
AIO_CONSTRAINTS := constraints-aioboto3.txt

$(AIO_STAMP): pyproject.toml $(wildcard $(AIO_CONSTRAINTS))
	test -x $(AIO_BIN)/python || $(PY) -m venv $(AIO_VENV)
	$(AIO_BIN)/python -m pip install -q --upgrade pip
	$(AIO_BIN)/python -m pip install -q $(if $(wildcard $(AIO_CONSTRAINTS)),-c $(AIO_CONSTRAINTS)) \
		-e '.[aioboto3]' 'pytest>=8'
	test -f $(AIO_CONSTRAINTS) || $(AIO_BIN)/python -m pip freeze --exclude-editable > $(AIO_CONSTRAINTS)
	touch $(AIO_STAMP)

demo: $(STAMP)
	$(BIN)/python samples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check logtap cli converters tests benchmarks samples
	$(BIN)/python tools/typecheck.py

test: lint
	$(BIN)/python -m pytest --ignore=tests/test_aioboto3.py
	$(MAKE) --no-print-directory test-aioboto3

test-aioboto3: $(AIO_STAMP)
	$(AIO_BIN)/python -m pytest tests/test_aioboto3.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(AIO_VENV) build .mypy_cache .ruff_cache .pytest_cache
