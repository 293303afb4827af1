# ofa-profile: `make demo` runs the main job, `make test` the test suite; both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= out

.PHONY: setup sysdeps test lint demo bench clean

$(BIN)/.installed: setup.py requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[teacher,int8]' -r requirements-test.txt
	$(BIN)/pip install -q --no-deps ofa==0.1.0.post202307202001
	touch $@

setup: $(BIN)/.installed

# system packages used by the device tests (real adb, a real OpenSSH server on loopback)
sysdeps:
	@if ! command -v adb >/dev/null || [ ! -x /usr/sbin/sshd ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq adb openssh-server openssh-client >/dev/null; \
	  else echo "note: install adb and openssh-server (apt-get) for the device tests; they skip without them" >&2; fi; \
	fi

# the suite on both cores (pytest-xdist, one test file per worker at a time), then alone the tests marked serial:
# they time something or race a signal or lock in real time
test: setup sysdeps
	$(BIN)/python -m pytest -q --durations=15 -n 2 --dist loadfile -m 'not serial' tests
	$(BIN)/python -m pytest -q --durations=5 -m serial tests

# pyflakes and pycodestyle as ruff.toml configures them (.ci/run runs it before the tests)
lint: setup
	$(BIN)/ruff check .

# the README's main job on this CPU, in $(OUT): one resolution and a smaller calibration, so it takes minutes
DEMO = cd $(OUT) && $(abspath $(BIN))/ofa-profile
demo: setup
	mkdir -p $(OUT)
	$(DEMO) devices
	$(DEMO) measure --device cpu-ort --out cpu-ort.json --resolutions 160
	$(DEMO) calibrate --device cpu-ort --lut cpu-ort.json --samples 30 --test-samples 10
	$(DEMO) predict --lut cpu-ort.json --arch $(abspath examples/arch-r160.json)
	$(DEMO) pareto --budget 8ms --lut cpu-ort.json
	$(DEMO) export --arch pareto-cpu-ort-8ms.best.json --format onnx --out best.onnx

# the benchmarks, one after the other (never two at once); figures go in benchmarks/RESULTS.md
bench: setup
	$(BIN)/python benchmarks/bench_lut.py
	$(BIN)/python benchmarks/bench_verify.py
	$(BIN)/python benchmarks/bench_search.py
	$(BIN)/python benchmarks/bench_predictors.py
	$(BIN)/python benchmarks/bench_fewshot_ceiling.py
	$(BIN)/python benchmarks/bench_supernet.py

clean:
	rm -rf $(OUT) build dist *.egg-info
