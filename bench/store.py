"""Where a run's figures go: the raw results JSON (bench/.work/results-*.json) and RESULTS.md."""

import json
from datetime import datetime
from pathlib import Path

from bench import report

WORK = Path(__file__).resolve().parent / ".work"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"


def save_raw(document: dict, started: datetime, label: str = "") -> Path:
    """Every figure of the run, for `--render` and for later comparison."""
    WORK.mkdir(exist_ok=True)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    raw = WORK / f"results-{stamp}{'-' + label if label else ''}.json"
    raw.write_text(json.dumps(document, indent=1))
    return raw


def load_raw(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def write_report(document: dict, output: str | Path) -> Path:
    """RESULTS.md (or `output`): the tables, the method and bench/notes.md."""
    path = Path(output)
    path.write_text(report.render(document))
    return path
