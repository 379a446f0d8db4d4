# One-step set-up shared by every target: a .venv at the project root with the toolkit installed.
VENV   := .venv
PY     := $(VENV)/bin/python
GQN    := $(VENV)/bin/gqn
STAMP  := $(VENV)/.installed
EXTRAS ?= test,mpi
DEMO   ?= demo

.PHONY: setup test demo bench quality system-deps clean

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

# The main job on a small default: render, train a small GQN for a few minutes on the CPU, evaluate. Rooms with
# a ring camera: the views of a room change with the camera in ways a small GQN picks up within minutes
# (docs/training.md). Trained on the 5 context views it is evaluated with (DEMO_CONTEXT): a lower error in
# the same minutes than on 1-9 or 1-5; with L = 2 generation steps (DEMO_STEPS) and 3x3 core kernels
# (DEMO_KERNEL) it does more iterations and ends lower than with 4 steps or 5x5 kernels; with the viewpoints in
# the query camera's yaw frame (DEMO_FRAME) it learns more per iteration than in the world's (ratio 0.42 against
# 0.48 after 4 minutes). A second `make demo` continues the run for DEMO_MINUTES more. The batch of 16 is split
# over DEMO_PROCESSES data-parallel MPI processes with one BLAS thread each (the mpi extra): on a CPU one
# process leaves most of a second core idle at this model's sizes (docs/performance.md).
DEMO_MINUTES   ?= 4
DEMO_PROCESSES ?= 2
DEMO_CONTEXT   ?= 5-5
DEMO_STEPS     ?= 2
DEMO_KERNEL    ?= 3
DEMO_FRAME     ?= query
DEMO_MODEL     := --steps $(DEMO_STEPS) --kernel $(DEMO_KERNEL) --frame $(DEMO_FRAME) --hidden 32 --canvas 32 --r-channels 64 \
                  --lr-start 1e-3 --lr-end 1e-3 --batch-size $(shell expr 16 / $(DEMO_PROCESSES))
DEMO_DATA      := rooms --camera ring --size 32
DEMO_TRAIN     := $(if $(filter 1,$(DEMO_PROCESSES)),$(GQN) train,OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 \
                  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 $(VENV)/bin/mpiexec -n $(DEMO_PROCESSES) --oversubscribe \
                  $(GQN) train --communicator naive)
demo: $(STAMP)
	$(GQN) render $(DEMO_DATA) --scenes 4000 --out $(DEMO)/data/train
	$(GQN) render $(DEMO_DATA) --scenes 256 --seed 1 --out $(DEMO)/data/test
	$(GQN) info $(DEMO)/data/train --preview $(DEMO)/preview.png
	$(DEMO_TRAIN) $(DEMO)/data/train --test $(DEMO)/data/test --test-every 250 --test-scenes 128 \
	    --out $(DEMO)/run --iterations 1M --time-limit $(DEMO_MINUTES)m $(DEMO_MODEL) --context $(DEMO_CONTEXT) \
	    --log-every 50 \
	    $(if $(wildcard $(DEMO)/run/snapshot.npz),--resume)
	$(GQN) evaluate $(DEMO)/run --data $(DEMO)/data/test --scenes 256 --context 5-5 --rows 6 --gifs 3
	@echo "demo: data in $(DEMO)/data, preview $(DEMO)/preview.png; in $(DEMO)/run/eval: metrics.json, predictions.png, curves.png, orbit GIFs"

bench: $(STAMP)
	$(PY) bench/render.py
	$(PY) bench/convert.py
	$(PY) bench/train.py
	$(PY) bench/online.py
	$(PY) bench/cpu_processes.py

# What each training objective learns in 10 minutes, then 30 for the paper schedule and the best recipes, the
# last the one examples/cpu_short_run.sh runs (about 3 h; quiet machine).
QUALITY_SCREEN := paper,fixed-sigma,calibrated,geco,geco-kappa015,paper-context5,paper-context5-batch8,paper-context5-batch8-auto
QUALITY_LONG   := paper,paper-context5,paper-5views-2x4-auto-L2-warm500-k3,paper-5views-2x4-auto-L2-warm500-k3-query
quality: $(STAMP)
	$(PY) bench/quality.py --minutes 10 --objectives $(QUALITY_SCREEN)
	$(PY) bench/quality.py --minutes 30 --objectives $(QUALITY_LONG)

clean:
	rm -rf $(VENV) $(DEMO) bench-quality *.egg-info
