# One command for the main job (`make demo`), one for the tests (`make test`).
# Both create the virtual environment on first use; later runs reuse it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup labelstudio demo demo-generate test test-fast clean

$(BIN)/.installed: pyproject.toml scripts/llama_wheel.py
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: on these machines 2.13.0 is a local CPU wheel (see README for GPUs)
	$(BIN)/pip install -q torch==2.13.0
	# llama.cpp without native flags, so it cannot fault on this CPU (AMX); built once per machine
	# and reused by every venv and clone (scripts/llama_wheel.py; SEEDLOOP_LLAMA_NATIVE=1 opts in)
	wheel=$$($(BIN)/python scripts/llama_wheel.py) && $(BIN)/pip install -q "$$wheel"
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

# The demo: a specialist improving round by round, from bundled data (examples/intents: Banking77
# messages of 20 card, transfer, top-up and cash intents). Round 0 curates the given pool (no teacher);
# each round trains a classifier on the packaged MiniLM encoder (warm start), measures its accuracy on
# the fixed evaluation file, picks the 40 pool messages it is least sure of, and the automatic
# reviewer labels them from the pool's answer key; unreviewed pool rows are never trained on. With
# LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY and DEMO_PROJECT=name set, it goes through that Label Studio
# project. Re-run after a crash: it continues where it stopped (`--until 3` never adds a fourth round).
WS ?= out/intents
DEMO_PROJECT ?=
demo: setup
	$(BIN)/seedloop doctor
	@test -f $(WS)/seedloop.yaml || $(BIN)/seedloop init $(WS) --seeds examples/intents/seeds.jsonl \
		--pool examples/intents/pool.jsonl --eval examples/intents/eval.jsonl --k 40 --unreviewed exclude \
		--auto-review $(if $(DEMO_PROJECT),--project $(DEMO_PROJECT))
	$(BIN)/seedloop cycle $(WS) --until 3
	$(BIN)/seedloop status $(WS)

# The generative loop on examples/banking_seeds.jsonl: round 0 generates and curates the pool with the
# embedded teacher; rounds 1 and 2 train the embedded student (LoRA, warm start), evaluate, select and
# review (the automatic reviewer, or Label Studio as above).
GEN_WS ?= out/workspace
demo-generate: setup
	@test -f $(GEN_WS)/seedloop.yaml || $(BIN)/seedloop init $(GEN_WS) --seeds examples/banking_seeds.jsonl \
		--n 30 --k 8 --auto-review $(if $(DEMO_PROJECT),--project $(DEMO_PROJECT)) --train-config lora \
		--train-set max_steps=6 --train-set eval_every=6 --train-set save_every=3 --train-set max_length=256
	$(BIN)/seedloop cycle $(GEN_WS) --until 2
	$(BIN)/seedloop status $(GEN_WS)

test: setup labelstudio
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q

test-fast: setup labelstudio
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -m "not slow"

clean:
	rm -rf $(VENV) out .pytest_cache
