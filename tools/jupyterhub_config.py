"""The hub trial's configuration: JupyterHub on 127.0.0.1, each learner's server from ./.venv.

`benchmarks/classroom.py --hub` starts `.venv-hub/bin/jupyterhub -f tools/jupyterhub_config.py`
with free ports, an API token and the learners' homes in its environment. By hand, after
tools/hub_venv.sh: the same command, then http://127.0.0.1:8000 (any name and any password:
DummyAuthenticator). A trial on one's own machine, never a class's hub: no passwords, and no
isolation between learners (SimpleLocalProcessSpawner runs every server as the hub's user).
"""

import os
import secrets
from pathlib import Path

c = get_config()  # noqa: F821 (defined by the config loader that reads this file)
ROOT = Path(__file__).resolve().parent.parent
env = os.environ.get

# Everything on loopback: the proxy (the learners' address), the hub, the proxy's API, the servers.
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = int(env("STREAMSCOPE_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(env("STREAMSCOPE_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{env('STREAMSCOPE_HUB_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.command = [str(ROOT / ".venv-hub/node_modules/.bin/configurable-http-proxy")]
c.Spawner.ip = "127.0.0.1"

# Nothing secret on disk: the database in memory, a cookie secret drawn at each start.
c.JupyterHub.db_url = "sqlite://"
c.JupyterHub.cookie_secret = secrets.token_bytes(32)

c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = env("STREAMSCOPE_HUB_HOMES", "/tmp") + "/{username}"

# A learner's server: jupyterhub's single-user server run by the project's ./.venv, so its
# kernels are ./.venv's Python with streamscope, on the replay backend; the repository is its root.
c.Spawner.cmd = [str(ROOT / ".venv/bin/python"), str(ROOT / "tools/hub_singleuser.py")]
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []
c.Spawner.notebook_dir = str(ROOT)
c.Spawner.default_url = "/lab/tree/notebooks/01_streaming_chat_completions.ipynb"
c.Spawner.environment = {"STREAMSCOPE_BACKEND": "replay"}
c.Spawner.start_timeout = c.Spawner.http_timeout = 180  # a class's servers all starting on 2 cores

# The benchmark's API token (from its environment, never written): it creates the learners,
# starts and stops their servers, and reaches each server's REST and websocket API.
token = env("STREAMSCOPE_HUB_TOKEN")
if token:
    c.JupyterHub.services = [{"name": "classroom", "api_token": token}]
    c.JupyterHub.load_roles = [
        {
            "name": "classroom",
            "scopes": ["admin:users", "admin:servers", "access:servers"],
            "services": ["classroom"],
        }
    ]
