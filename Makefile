# One command for the main job (`make demo`), one for the tests (`make test`).
# Both create the virtual environment on first use; later runs reuse it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: on these machines 2.13.0 is a local CPU wheel (see README for GPUs)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/seedloop generate --seeds examples/banking_seeds.jsonl --n 100 --out out/generated.parquet \
		--drops out/dropped.jsonl --hf-dataset out/generated_hf --cache out/cache.sqlite
	$(BIN)/seedloop ledger --cache out/cache.sqlite

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -m "not slow"

clean:
	rm -rf $(VENV) out .pytest_cache
