"""The course's reading budget, computed from the notebooks: words of prose, lines of code, minutes.

Prose is the text of the markdown cells without fenced code blocks (those count as code); a word is
a whitespace-separated token holding a letter or a digit. Code is the non-blank lines of the code
cells and of the fenced blocks. Reading time assumes 200 words of prose a minute and 3.5 s a line
of code (the pace that gave the 87 minutes issue 18 measured for the six notebooks of 2026-12-03).
Outputs are not counted.

    python tools/course_budget.py            # every notebook, then the core path's total
    python tools/course_budget.py --check    # exit 1 when the core path is over its budget
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CORE_PATH = ("01_", "02_", "03_")  # chat completions, the Responses API, usage and moderation
WORDS_PER_MINUTE = 200
SECONDS_PER_CODE_LINE = 3.5
BUDGET_MINUTES = 30
BUDGET_WORDS = 3500
BUDGET_LINES_PER_CELL = 15

_FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
_WORD = re.compile(r"\S*[A-Za-z0-9]\S*")


@dataclass(frozen=True)
class Counts:
    """What one notebook asks of its reader."""

    name: str
    words: int
    code_lines: int
    longest_code_cell: int

    @property
    def minutes(self) -> float:
        return self.words / WORDS_PER_MINUTE + self.code_lines * SECONDS_PER_CODE_LINE / 60


def _lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


def count(path: Path) -> Counts:
    """The words of prose and lines of code of the notebook at ``path``."""
    words = code_lines = longest = 0
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            fenced = _FENCE.findall(source)
            code_lines += sum(_lines(block) - 2 for block in fenced)  # less the fences themselves
            words += len(_WORD.findall(_FENCE.sub("", source)))
        elif cell["cell_type"] == "code":
            lines = _lines(source)
            code_lines += lines
            longest = max(longest, lines)
    return Counts(path.stem, words, code_lines, longest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the core path is over budget")
    args = parser.parse_args(argv)
    every = [count(path) for path in sorted(NOTEBOOKS.glob("*.ipynb"))]
    print(f"{'notebook':<44}{'words':>7}{'code lines':>12}{'longest cell':>14}{'minutes':>9}")
    for c in every:
        print(f"{c.name:<44}{c.words:>7}{c.code_lines:>12}{c.longest_code_cell:>14}{c.minutes:>9.1f}")
    core = [c for c in every if c.name.startswith(CORE_PATH)]
    words, minutes = sum(c.words for c in core), sum(c.minutes for c in core)
    longest = max((c.longest_code_cell for c in core), default=0)
    print(
        f"core path ({len(core)} notebooks): {words} words (budget {BUDGET_WORDS}), {minutes:.1f} minutes "
        f"(budget {BUDGET_MINUTES}), longest code cell {longest} lines (budget {BUDGET_LINES_PER_CELL})"
    )
    over = words > BUDGET_WORDS or minutes > BUDGET_MINUTES or longest > BUDGET_LINES_PER_CELL
    return 1 if args.check and over else 0


if __name__ == "__main__":
    sys.exit(main())
