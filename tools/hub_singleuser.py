"""A learner's server in the hub trial: jupyterhub's single-user server, run by ./.venv's Python.

The hub's spawner starts this (tools/jupyterhub_config.py). ./.venv holds jupyter_server,
JupyterLab, ipykernel and streamscope at the lock's versions, but not jupyterhub, which is no
dependency of the package; tools/hub_venv.sh installs it into .venv-hub from the same Python.
.venv-hub's packages go after ./.venv's on this process's path, so every package ./.venv has is
its own and only what it lacks (jupyterhub, SQLAlchemy, ...) comes from .venv-hub. The path is
changed here, not in the environment, so the kernels this server starts are ./.venv's alone.
"""

import sys
import sysconfig
from pathlib import Path

HUB_VENV = Path(__file__).resolve().parent.parent / ".venv-hub"
where = {"base": str(HUB_VENV), "platbase": str(HUB_VENV)}
for kind in ("purelib", "platlib"):
    path = sysconfig.get_path(kind, vars=where)
    if not Path(path).is_dir():
        sys.exit(f"hub: {path} is missing: run tools/hub_venv.sh (it builds .venv-hub for this Python)")
    if path not in sys.path:
        sys.path.append(path)

from jupyterhub.singleuser import main  # noqa: E402 (importable only once the path above is set)

sys.exit(main())
