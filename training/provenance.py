"""Provenance of every report and model card: the command that ran, the commit, the machine, one way to write.

Each CLI in `training/` (and the load test in `scripts/`) records how its numbers came about. The pieces
live here so they are computed the same way everywhere. Importing this module stays cheap (no torch, no
timm) because the pages, the API and light scripts import it too.

    report = {...figures...}
    provenance.write_report(path, report, "training.evaluate_classifier", argv, data=str(data))
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CODE_DIR = Path(__file__).resolve().parent  # git runs here: the commit of the code, whatever the cwd


def git_commit() -> str:
    """The commit the code is at; "unknown" without git or outside a checkout (a copied tree)."""
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], text=True, cwd=CODE_DIR,
                                       stderr=subprocess.DEVNULL).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line(module: str, argv: list[str] | None = None) -> str:
    """The command that reproduces the run: "python -m MODULE ARGS", args shell-quoted so it can be pasted.

    `argv` defaults to this process's arguments; a `module` ending in ".py" is a script path, run as
    "python PATH ARGS"."""
    args = sys.argv[1:] if argv is None else argv
    head = f"python {module}" if module.endswith(".py") else f"python -m {module}"
    return " ".join([head, *(shlex.quote(str(a)) for a in args)])


def utc_now() -> str:
    """When a report was made, in UTC to the second (the `created` field)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load averages: timings taken on shared cores are only read beside them."""
    return [round(v, 2) for v in os.getloadavg()]


def busy_state() -> dict[str, Any]:
    """How loaded the machine is: load averages and whether a classifier training is running."""
    training = False
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            except OSError:
                continue
            if "train_classifier" in cmd and "benchmark" not in cmd:
                training = True
                break
    return {"load_avg_1_5_15": load_average(), "train_classifier_running": training}


def machine(before: dict[str, Any]) -> dict[str, Any]:
    """The benchmarks' `machine` field: CPU count and the busy state before (given) and after (now) a run."""
    return {"cpus": os.cpu_count(), "before": before, "after": busy_state()}


def stamp(report: dict[str, Any], module: str, argv: list[str] | None = None, *, data: Any = None,
          created: bool = False) -> dict[str, Any]:
    """Add `command` and `commit` (and `data`, and a `created` time, when asked) to `report`; returns it."""
    report["command"] = command_line(module, argv)
    report["commit"] = git_commit()
    if data is not None:
        report["data"] = data
    if created:
        report["created"] = utc_now()
    return report


def json_text(obj: Any, indent: int = 2) -> str:
    """Indented JSON with a trailing newline: how reports and cards look on disk and in downloads."""
    return json.dumps(obj, indent=indent) + "\n"


def write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Write `obj` as `json_text`, making the folder first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json_text(obj, indent))
    return path


def write_report(path: str | Path, report: dict[str, Any], module: str, argv: list[str] | None = None, *,
                 data: Any = None, created: bool = False) -> dict[str, Any]:
    """Stamp `report` (see `stamp`) and write it to `path` as JSON; returns the stamped report."""
    write_json(path, stamp(report, module, argv, data=data, created=created))
    return report
