# The two quick-start commands. Both create ./.venv on first use and reuse it after.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: lab test notebooks

# JupyterLab refuses to run as root without --allow-root (containers, CI machines). The server's root
# is the repository, as on Binder, and the first page is notebook 01.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(ALLOW_ROOT) --ServerApp.root_dir=. \
		--LabApp.default_url=/lab/tree/notebooks/01_streaming_chat_completions.ipynb

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
	# matplotlib's font cache, built now rather than in a notebook cell (a slow build warns on stderr).
	$(VENV)/bin/python -c "import matplotlib.font_manager"
	rm -f $(VENV)/.installed-*
	touch $@
