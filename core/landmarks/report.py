"""Reading `weights/reports/landmarks.json` into tables, and the plain-words summary of the emotion study.

The study script stores `impact_summary`'s sentences in the report and the page shows them, so the words
always describe the numbers beside them (they are recomputed whenever the study is rerun).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from core import settings
from core.landmarks.mapping import REGIONS

REPORT_NAME = "landmarks.json"
TOLERANCE = 0.01  # "no real change" in accuracy: within one percentage point


def report_path() -> Path:
    return settings.get().reports_dir / REPORT_NAME


def load_landmark_report(path: Path | None = None) -> dict[str, Any] | None:
    """The report, or None when it has not been produced yet (or cannot be read)."""
    try:
        return json.loads((path or report_path()).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def nme_table(methods: dict[str, dict[str, Any]], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per method: NME overall and per region, failure rate, speed."""
    rows = []
    for name, m in methods.items():
        row = {"method": (labels or {}).get(name, name), "faces": m["n"], "NME": m["nme"]}
        row.update({f"NME {r}": m["nme_by_region"].get(r) for r in REGIONS})
        row.update({"eye-centre error": m.get("eye_centre_error"), "failure rate": m["failure_rate"],
                    "AUC@0.08": m.get("auc_at_failure"), "ms per face": m["ms_per_face"]})
        rows.append(row)
    return pd.DataFrame(rows)


def ced_frame(report: dict[str, Any], subset: str | None = None) -> pd.DataFrame:
    """Long table (method, threshold, fraction) of the cumulative error distribution."""
    methods = report["methods"] if subset is None else report["by_subset"][subset]["methods"]
    rows = [{"method": name, "NME threshold": t, "fraction of faces": f}
            for name, m in methods.items() for t, f in zip(report["ced_thresholds"], m["ced"])]
    return pd.DataFrame(rows)


def curve_frame(section: dict[str, Any]) -> pd.DataFrame:
    """Long table of the accuracy-vs-landmark-error curves, one row per (set, noise level)."""
    rows = [{"set": name, **point} for name, s in section["sets"].items() for point in s["curve"]]
    return pd.DataFrame(rows)


def _tolerance(curve: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """The last curve point before accuracy is clearly (95% interval) below error-free alignment, and whether
    such a drop happened at all within the tested range."""
    last = curve[0]
    for point in curve[1:]:
        if point["diff_vs_clean_ci95"][1] < 0:
            return last, True
        last = point
    return last, False


def _crossover(curve: list[dict[str, Any]]) -> float | None:
    """The first NME at which aligned accuracy is surely (95% interval) below no alignment."""
    for point in curve:
        if point["diff_vs_none_ci95"][1] < 0:
            return point["nme"]
    return None


def _pts(x: float) -> str:
    return f"{x * 100:+.1f} points"


def impact_summary(section: dict[str, Any], accuracy: dict[str, Any] | None = None,
                   accuracy_label: str = "real photos") -> list[str]:
    """Two or three sentences on what the study found, derived only from its numbers.

    `accuracy`: the `methods` table of the landmark-accuracy part (ideally the fair subset), to say whether
    real landmarkers' errors fall inside the error the classifier tolerates.
    """
    sets = section["sets"]
    parts, gains, losses = [], [], []
    for name, s in sets.items():
        c = s["conditions"]
        effects = []
        for m in section["methods"]:
            lo, hi = c[m]["diff_vs_none_ci95"]
            if lo > 0 and name not in gains:
                gains.append(name)
            if hi < 0 and name not in losses:
                losses.append(name)
            effects.append(f"{_pts(c[m]['diff_vs_none'])} with {m}")
        parts.append(f"{name} (n={s['n_common']}, {c['none']['accuracy']:.1%} unaligned): " + ", ".join(effects))
    verdict = ("at least one change is outside its 95% interval" if gains or losses
               else "every change is within its 95% interval of zero")
    lines = [f"Aligning faces from landmarks changed {section['model']}'s accuracy on "
             + "; on ".join(parts) + f" — {verdict}."]
    tols = {name: _tolerance(s["curve"]) for name, s in sets.items()}
    crosses = {name: _crossover(s["curve"]) for name, s in sets.items()}
    top = max(p["nme"] for s in sets.values() for p in s["curve"])
    crossing = [f"{c:.3f} ({n})" for n, c in crosses.items() if c is not None]
    lines.append(
        "As landmark error grows, accuracy stays level with error-free alignment (no drop outside the 95% "
        "interval) up to NME " + ", ".join(f"{'' if dropped else '≥'}{p['nme']:.3f} ({n})"
                                         for n, (p, dropped) in tols.items())
        + "; it falls clearly below no alignment " + (f"from NME {', '.join(crossing)}" if crossing else
                                                      f"nowhere in the tested range (up to NME {top:.3f})") + ".")
    user = "For users: "
    neutral = [n for n in sets if n not in gains and n not in losses]
    if gains and not losses:
        user += f"alignment helps on {', '.join(gains)}" + (
            f" and makes no clear difference on {', '.join(neutral)}" if neutral else "") + \
            ", so switch it on for photos like those"
    elif losses and not gains:
        user += f"alignment hurts on {', '.join(losses)}, so leave it off for photos like those"
    elif gains and losses:
        user += (f"alignment helps on {', '.join(gains)} but hurts on {', '.join(losses)}, so whether to switch "
                 "it on depends on your photos")
    else:
        user += "alignment does not reliably change the emotion read-out, so it can stay off"
    if accuracy:
        # Alignment uses only the eye centres, so compare like with like: eye-centre errors.
        tol_eye = min(p["eye_centre_error"] for p, _ in tols.values())
        errs = {m: accuracy[m].get("eye_centre_error") for m in section["methods"] if m in accuracy}
        errs = {m: v for m, v in errs.items() if v is not None}
        if errs:
            below = all(v <= tol_eye for v in errs.values())
            user += ("; real landmarkers' eye centres are off by " +
                     ", ".join(f"{v:.3f} ({m})" for m, v in errs.items()) + f" of the eye distance on {accuracy_label}, "
                     + ("within" if below else "more than") + f" the {tol_eye:.3f} of added eye-centre error the "
                     "accuracy is shown to tolerate")
            apart = {(n, m): v["eye_centre_error"] for n, s in sets.items()
                     for m, v in s.get("vs_reference", {}).items()}
            if apart and max(apart.values()) > tol_eye:
                (n, m), v = max(apart.items(), key=lambda kv: kv[1])
                user += (f", but on {n} {m} and {section.get('reference', 'the reference')} put the eye centres "
                         f"{v:.3f} apart, enough to cost accuracy")
    lines.append(user + ".")
    main_name = next(iter(sets))
    acc0 = sets[main_name]["conditions"]["none"]["accuracy"]
    if acc0 < 0.4:
        lines.append(f"Caution: this model scores only {acc0:.1%} on {main_name}, near chance for 7 classes, so "
                     "these differences say little until the study is rerun with a trained model.")
    return lines
