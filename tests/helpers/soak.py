"""Quick or full: how hard the fault, load and hostile-input tests push, and their figures.

``scripts/test`` runs every test at its quick scale (CI's short version); ``scripts/soak``
sets ``PCTEST_SOAK=1`` and runs the same tests at full scale, as the issue asks (200
SIGKILLs, 60 s of load from 100 clients, thousands of fuzz cases). An environment
variable rather than a pytest option, because hypothesis reads example counts when the
test module is imported, before any option is parsed.

Each test records what it did with :func:`record`; ``scripts/soak`` prints the results
as the table that docs/resilience.md quotes.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

SOAK = os.environ.get("PCTEST_SOAK") == "1"
RESULTS = Path(
    os.environ.get(
        "PCTEST_RESULTS",
        Path(__file__).resolve().parents[2] / "test-artifacts" / "resilience.json",
    )
)


def scaled(quick, full):
    """``full`` under scripts/soak, ``quick`` in the everyday suite."""
    return full if SOAK else quick


def record(part: str, what: str, figure: object) -> None:
    """Add one figure to the results file (parts: faults, load, hostile)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        try:
            data = json.loads(fh.read() or "{}")
        except ValueError:
            data = {}
        scale = "full" if SOAK else "quick"
        if data.get("scale") != scale:  # figures of another scale: start afresh
            data = {"scale": scale}
        data.setdefault(part, {})[what] = figure
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(data, indent=1, sort_keys=True))


def _shown(figure: object) -> str:
    if isinstance(figure, dict):
        return ", ".join(f"{k}: {v:,}" for k, v in figure.items())
    if isinstance(figure, list):
        return " / ".join(f"{v:,}" for v in figure)
    return f"{figure:,}" if isinstance(figure, int) else str(figure)


def table(data: dict) -> str:
    """The results as the Markdown table docs/resilience.md quotes."""
    lines = [f"Scale: {data.get('scale', '?')}", "", "| part | what | figure |", "|---|---|---|"]
    for part in ("faults", "load", "hostile"):
        for what, figure in sorted(data.get(part, {}).items()):
            lines.append(f"| {part} | {what} | {_shown(figure)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(RESULTS.read_text())))
