#!/bin/sh
# Builds .venv-hub, the JupyterHub trial's own environment (usage: tools/hub_venv.sh).
#
# `benchmarks/classroom.py --hub` runs notebook 01 through a real JupyterHub on this machine. The hub
# is no part of streamscope, so it stays out of the project's lock: jupyterhub from PyPI in .venv-hub
# (ignored by git, as every .venv-*), made from the same Python as ./.venv because the learners'
# servers run in ./.venv and take from .venv-hub only what ./.venv lacks (tools/hub_singleuser.py),
# and configurable-http-proxy from npm in .venv-hub/node_modules. Needs ./.venv (make venv) and npm.
# Re-running it is quick; it rebuilds .venv-hub when ./.venv's Python changed.
set -eu
cd "$(dirname "$0")/.."
JUPYTERHUB=6.1.1                # PyPI
CONFIGURABLE_HTTP_PROXY=5.3.0   # npm

say() { printf 'hub: %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
    say "no ./.venv: run make venv first (the learners' servers and kernels run in it)"
    exit 1
fi
# The interpreter ./.venv was made from: compiled packages in .venv-hub (SQLAlchemy) must suit it.
base=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
want=$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
have=$(.venv-hub/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
if [ "$have" != "$want" ]; then
    [ -z "$have" ] || say "./.venv is Python $want, .venv-hub $have: rebuilding .venv-hub"
    rm -rf .venv-hub
    "$base" -m venv .venv-hub
fi
.venv-hub/bin/python -m pip install --quiet --disable-pip-version-check "jupyterhub==$JUPYTERHUB"
npm install --prefix .venv-hub --no-save --no-audit --no-fund --loglevel=error \
    "configurable-http-proxy@$CONFIGURABLE_HTTP_PROXY"
say "jupyterhub $(.venv-hub/bin/jupyterhub --version) and configurable-http-proxy" \
    "$(.venv-hub/node_modules/.bin/configurable-http-proxy --version) in .venv-hub (Python $want)"
