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

demo: $(STAMP)
	$(GQN) render shepard-matzler --scenes 400 --scenes-per-shard 200 --out $(DEMO)/data/train
	$(GQN) info $(DEMO)/data/train --preview $(DEMO)/preview.png
	@echo "demo: dataset in $(DEMO)/data, preview in $(DEMO)/preview.png"

bench: $(STAMP)
	$(PY) bench/render.py

clean:
	rm -rf $(VENV) $(DEMO) *.egg-info
