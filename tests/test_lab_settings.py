"""The JupyterLab settings defaults the project ships (binder/lab-settings/overrides.json).

They turn off the "get notified about official Jupyter news?" prompt, which covered the chart in every
screenshot. Checked against the installed JupyterLab's own settings schema, and for both ways of
starting JupyterLab: `make lab` and Binder's postBuild.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ROOT / "binder" / "lab-settings" / "overrides.json"
SCHEMAS = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"


def test_the_overrides_turn_off_the_news_prompt_and_fit_jupyterlabs_schema():
    overrides = json.loads(OVERRIDES.read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    for plugin, settings in overrides.items():
        package, name = plugin.split(":")
        schema = json.loads((SCHEMAS / package / f"{name}.json").read_text())
        jsonschema.validate(settings, schema)


def test_make_lab_and_binder_both_use_them():
    assert "--LabApp.app_settings_dir=$(CURDIR)/binder/lab-settings" in (ROOT / "Makefile").read_text()
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "cp binder/lab-settings/overrides.json" in post_build
    assert "share/jupyter/lab/settings" in post_build
