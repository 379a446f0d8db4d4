# One-step set-up shared by every target: a .venv at the project root with the toolkit installed.
VENV   := .venv
PY     := $(VENV)/bin/python
GQN    := $(VENV)/bin/gqn
STAMP  := $(VENV)/.installed
EXTRAS ?= test,mpi
DEMO   ?= demo

.PHONY: setup test demo bench system-deps clean

setup: $(STAMP)

$(STAMP): setup.cfg pyproject.toml build-constraints.txt
	@$(MAKE) --no-print-directory system-deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade 'pip>=25.3'
	$(VENV)/bin/pip install -q --build-constraint build-constraints.txt -e '.[$(EXTRAS)]'
	touch $@

# Offscreen OpenGL needs Mesa's EGL (CPU rendering) or a GPU vendor's EGL.
system-deps:
	@if command -v dpkg >/dev/null && ! dpkg -s libegl1 libgl1-mesa-dri >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq libegl1 libgl1-mesa-dri; \
	  else echo "missing system packages: run 'sudo apt-get install libegl1 libgl1-mesa-dri'"; exit 1; fi; \
	fi

test: $(STAMP)
	$(PY) -m pytest

# The main job on a small default: render, train a small GQN for a few minutes on the CPU, evaluate.
DEMO_ITERATIONS ?= 200
DEMO_MODEL      := --hidden 32 --steps 4 --canvas 32 --r-channels 64 --representation pool
demo: $(STAMP)
	$(GQN) render shepard-matzler --scenes 1000 --size 32 --scenes-per-shard 500 --out $(DEMO)/data/train
	$(GQN) render shepard-matzler --scenes 64 --size 32 --seed 1 --out $(DEMO)/data/test
	$(GQN) info $(DEMO)/data/train --preview $(DEMO)/preview.png
	$(GQN) train $(DEMO)/data/train --out $(DEMO)/run --iterations $(DEMO_ITERATIONS) --batch-size 16 \
	    $(DEMO_MODEL) --sigma-steps 150 --log-every 20 $(if $(wildcard $(DEMO)/run/snapshot.npz),--resume)
	$(GQN) evaluate $(DEMO)/run --data $(DEMO)/data/test --scenes 64 --rows 6 --gifs 3
	@echo "demo: data in $(DEMO)/data, preview $(DEMO)/preview.png, predictions $(DEMO)/run/eval/predictions.png, GIFs $(DEMO)/run/eval/orbit_*.gif"

bench: $(STAMP)
	$(PY) bench/render.py
	$(PY) bench/convert.py
	$(PY) bench/train.py
	$(PY) bench/online.py

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
