"""The README's Binder badge, built from the one place that names the repository.

``[project.urls] Repository`` in pyproject.toml names the GitHub repository; the badge launches
its ``main`` branch on mybinder.org, opening notebook 01. Usage, from the repository's root:

    python tools/binder_badge.py           print the badge line
    python tools/binder_badge.py --write   put it in README.md (after changing the URL for a fork)
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIRST_NOTEBOOK = "notebooks/01_streaming_chat_completions.ipynb"
BADGE_LINE = re.compile(r"^\[!\[Binder\]\(https://mybinder\.org/badge_logo\.svg\)\]\(.*\)$", re.MULTILINE)


def repository() -> str:
    """``OWNER/NAME`` of the GitHub repository in pyproject.toml's ``[project.urls]``."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["urls"]
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", urls["Repository"])
    if match is None:
        raise ValueError(f"[project.urls] Repository is not a GitHub repository URL: {urls['Repository']}")
    return match.group(1)


def badge() -> str:
    """The badge's Markdown line."""
    launch = f"https://mybinder.org/v2/gh/{repository()}/main?urlpath=lab/tree/{FIRST_NOTEBOOK}"
    return f"[![Binder](https://mybinder.org/badge_logo.svg)]({launch})"


def main(argv: list[str]) -> None:
    line = badge()
    if argv != ["--write"]:
        print(line)
        return
    text = README.read_text(encoding="utf-8")
    if not BADGE_LINE.search(text):
        raise SystemExit(f"no Binder badge line in {README}")
    README.write_text(BADGE_LINE.sub(lambda _: line, text), encoding="utf-8")
    print(f"README.md: {line}")


if __name__ == "__main__":
    main(sys.argv[1:])
