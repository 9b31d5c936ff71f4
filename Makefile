# One command for the main job (`make demo`), one for the tests (`make test`).
# Both create the virtual environment on first use; later runs reuse it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup labelstudio demo test test-fast clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: on these machines 2.13.0 is a local CPU wheel (see README for GPUs)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/.installed

# The Label Studio server (review tests, `seedloop review serve`) pins Django and much else, so it
# gets a virtual environment of its own; seedloop itself only needs label-studio-sdk.
LS_VENV := .venv-labelstudio
$(LS_VENV)/.installed:
	$(PY) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install -q label-studio==1.23.2
	touch $@

labelstudio: $(LS_VENV)/.installed

demo: setup
	$(BIN)/seedloop generate --seeds examples/banking_seeds.jsonl --n 100 --out out/generated.parquet \
		--drops out/dropped.jsonl --hf-dataset out/generated_hf --cache out/cache.sqlite
	$(BIN)/seedloop ledger --cache out/cache.sqlite

test: setup labelstudio
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

test-fast: setup labelstudio
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -m "not slow"

clean:
	rm -rf $(VENV) out .pytest_cache
