"""Markdown tables and key figures for docs/REPORT.md and the slides, computed from `weights/reports/*.json`.

Every function takes the loaded reports and returns text, so the report regenerates from data and a test
can tell when the committed report no longer matches the reports it was built from.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.emotion.vocabulary import EMOTIONS


@dataclass
class ReportInputs:
    """Everything the report reads: shipped model cards and the evaluation reports."""

    cards: dict[str, dict[str, Any]]
    reports: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, weights_dir: Path) -> "ReportInputs":
        cards = {}
        for path in sorted(weights_dir.glob("*.json")):
            try:
                cards[path.stem] = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
        reports = {}
        for path in sorted((weights_dir / "reports").glob("*.json")):
            try:
                reports[path.stem] = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
        return cls(cards, reports)

    def get(self, name: str) -> dict[str, Any] | None:
        return self.reports.get(name)


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def missing(what: str, command: str) -> str:
    return f"_{what} has not been measured yet: run `{command}`._"


def classifier_reports(inp: ReportInputs) -> list[dict[str, Any]]:
    return [r for name, r in inp.reports.items() if name.startswith("classifier_")]


def shipped_classifier_table(inp: ReportInputs) -> str:
    rows = []
    for rep in sorted(classifier_reports(inp), key=lambda r: (r.get("model", ""), r.get("labels", "fer2013"),
                                                             r.get("split", ""), r.get("tta", False))):
        card = inp.cards.get(rep.get("model", ""), {})
        rows.append([f"`{rep.get('model')}`", card.get("architecture", "–"),
                     num(card.get("parameters", 0) / 1e6, 2) + " M" if card else "–",
                     rep.get("split", "–") + (" + flip TTA" if rep.get("tta") else ""),
                     "FER+ majority" if rep.get("labels") == "ferplus_majority" else "FER-2013",
                     str(rep.get("n", "–")), pct(rep.get("accuracy"), 2), num(rep.get("macro_f1")),
                     num(rep.get("ece"))])
    if not rows:
        return missing("The classifier", "python -m training.evaluate_classifier --split PrivateTest --json ...")
    return table(["model", "architecture", "parameters", "split", "labels", "faces", "accuracy", "macro-F1",
                  "ECE"], rows)


def per_class_table(inp: ReportInputs, name: str) -> str:
    rep = inp.get(name)
    if rep is None:
        return missing(name, "python -m training.evaluate_classifier")
    rows = [[e, num(m["precision"]), num(m["recall"]), num(m["f1"]), str(m["support"])]
            for e, m in rep["per_class"].items()]
    return table(["emotion", "precision", "recall", "F1", "support"], rows)


def confusion_table(inp: ReportInputs, name: str) -> str:
    rep = inp.get(name)
    if rep is None:
        return missing(name, "python -m training.evaluate_classifier")
    conf = np.asarray(rep["confusion"], float)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    classes = rep.get("classes", list(EMOTIONS))
    rows = [[f"**{c}**"] + [f"{100 * v:.0f}" for v in norm[i]] for i, c in enumerate(classes)]
    return table(["true \\ predicted (% of row)"] + list(classes), rows)


def experiments_table(inp: ReportInputs) -> str:
    rep = inp.get("experiments")
    if rep is None:
        return missing("The architecture comparison", "python -m training.run_experiments ...")
    rows = [[f"`{r['architecture']}`", f"{r['input_size']}²", num(r["params_m"], 2) + " M",
             pct(r["public_test_accuracy"]), pct(r["private_test_accuracy"]), num(r["macro_f1"]),
             num(r.get("ms_per_face"), 1), num(r.get("train_minutes"), 1)] for r in rep["runs"]]
    return (table(["architecture", "input", "parameters", "PublicTest acc", "PrivateTest acc", "macro-F1",
                   "ms/face (CPU)", "train min"], rows)
            + f"\n\n{rep.get('recipe_note', '')} Command: `{rep.get('command', '')}`"
            + (f"\n\nms/face: {rep['ms_per_face_method']} (`{rep.get('ms_per_face_command', '')}`)."
               if rep.get("ms_per_face_method") else ""))


def detection_table(inp: ReportInputs) -> str:
    rep = inp.get("detection")
    if rep is None:
        return missing("Face detection", "python -m training.evaluate_detector ...")
    rows = [[f"`{name}`", num(d.get("threshold"), 2), num(d.get("precision")), num(d.get("recall")),
             num(d.get("f1")), num(d.get("ap50")), num(d.get("ap50_95")), num(d.get("ms_per_image"), 1)]
            for name, d in rep["detectors"].items()]
    meta = (f"{rep.get('split', 'val')} split, {rep.get('n_images', '?')} images; faces under "
            f"{rep.get('min_face', '?')} px are ignore regions. Command: `{rep.get('command', '')}`")
    return table(["detector", "threshold", "precision", "recall", "F1", "AP50", "AP50-95", "ms/image"],
                 rows) + "\n\n" + meta


def fairness_table(inp: ReportInputs) -> str:
    rep = inp.get("fairness")
    if rep is None:
        return missing("The fairness audit", "python -m training.audit_fairness ...")
    rows = []
    for attr, metrics in rep.get("gaps", {}).items():
        for metric, g in metrics.items():
            if not isinstance(g, dict) or "gap" not in g:
                continue
            ci = g.get("ci") or [None, None]
            rows.append([attr, metric, f"{g.get('high')} vs {g.get('low')}", num(g["gap"]),
                         f"[{num(ci[0])}, {num(ci[1])}]", "**yes**" if g.get("flagged") else "no"])
    overall = [[scope, str(o.get("n")), str(o.get("n_subjects")), pct(o.get("accuracy")),
                f"[{pct((o.get('accuracy_ci') or [None])[0])}, {pct((o.get('accuracy_ci') or [None, None])[1])}]"]
               for scope, o in rep.get("overall", {}).items()]
    return (table(["source", "faces", "people", "accuracy", "95% CI"], overall) + "\n\n"
            + table(["attribute", "metric", "groups (high vs low)", "gap", "95% CI", "flagged"], rows)
            + f"\n\nCommand: `{rep.get('command', '')}`")


def landmarks_table(inp: ReportInputs) -> str:
    rep = inp.get("landmarks")
    if rep is None:
        return missing("Landmark accuracy", "python -m training.evaluate_landmarks ...")
    subset = rep.get("fair_subset", "helen_test")
    methods = rep["by_subset"][subset]["methods"]
    rows = [[f"`{m}`", num(v["nme"], 4), num(v["nme_median"], 4), pct(v["failure_rate"]),
             num(v["auc_at_failure"]), num(v.get("ms_per_face"), 1)] for m, v in methods.items()]
    return (table(["method", "NME", "median NME", "failure rate", f"AUC@{rep.get('failure_threshold')}",
                   "ms/face"], rows)
            + f"\n\nSubset `{subset}` ({rep['by_subset'][subset]['n']} faces). Command: `{rep.get('command', '')}`")


def live_table(inp: ReportInputs) -> str:
    rep = inp.get("benchmark_live")
    if rep is None:
        return missing("Live speed", "python -m training.benchmark --json weights/reports/benchmark_live.json")
    stages = rep.get("stages_ms", {})
    rows = [[stage, num(v.get("p50"), 2), num(v.get("p95"), 2)] for stage, v in stages.items()]
    return (table(["stage", "p50 ms", "p95 ms"], rows)
            + f"\n\nEnd to end: **{num(rep.get('fps_640x480'), 1)} FPS** at 640×480, one face. "
              f"Command: `{rep.get('command', '')}`")


def batch_table(inp: ReportInputs) -> str:
    rep = inp.get("batch_benchmark")
    if rep is None:
        return missing("Batch throughput",
                       "python -m training.benchmark_batch --n 60 --json weights/reports/batch_benchmark.json")
    rows = []
    for r in rep.get("runs", []):
        stages = r.get("worker_ms_per_image", {})
        rows.append([r["engine"] + (f", {r['workers']} worker(s)" if r.get("workers") else ""),
                     str(r.get("torch_threads")), num(r.get("images_per_s_wall"), 2),
                     num(r.get("images_per_s_steady"), 2), num(r.get("startup_s"), 1),
                     num(r.get("peak_pss_mb_sum"), 0),
                     " / ".join(num(stages.get(k), 1) for k in ("decode", "detect", "classify"))])
    machine = rep.get("machine", {})
    load = machine.get("before", {}).get("load_avg_1_5_15") if isinstance(machine.get("before"), dict) else None
    return (table(["engine", "torch threads", "images/s (whole run)", "images/s (steady)", "start-up s",
                   "peak memory MB (PSS)", "ms/image decode / detect / classify"], rows)
            + f"\n\n{rep.get('n_images')} generated images; detector `{rep.get('detector')}`, model "
              f"`{rep.get('model')}`; load average before the run: {load}. "
              f"Command: `{rep.get('command', '')}`")


def classifier_speed_table(inp: ReportInputs) -> str:
    rep = inp.get("speed_classifier")
    if rep is None:
        return missing("Classifier speed", "python -m training.benchmark_classifier --json weights/reports/speed_classifier.json")
    rows = [[name, num(r["median_ms"], 2),
             num(r["p10_ms"], 2), str(r["n"])] for name, r in rep["backends"].items()]
    return (table(["backend, threads", "median ms/face", "p10 ms/face", "runs"], rows)
            + f"\n\nModel `{rep['model']}`, batch 1, one face crop (preprocessing, network, calibrated softmax); "
              f"fastest: `{rep['fastest']}`; load average {rep['load_avg_before']}. Command: `{rep['command']}`")


def detector_speed_table(inp: ReportInputs) -> str:
    rep = inp.get("speed_detector")
    if rep is None:
        return missing("YOLO speed", "python -m training.benchmark_detector --json weights/reports/speed_detector.json")
    rows = [[name, num(r["median_ms"], 1), num(r["p10_ms"], 1), str(r["rounds"])]
            for name, r in rep["backends"].items()]
    long_sides = sorted({max(int(v) for v in size.split("x")) for size in rep.get("image_sizes", [])})
    return (table(["backend, threads", "median ms/image", "p10 ms/image", "rounds"], rows)
            + f"\n\nOur YOLO at input {rep['imgsz']}, threshold {num(rep['threshold'], 2)}, on {rep['images']} "
              f"{rep['split']} photos (long side {'/'.join(map(str, long_sides))} px); `detect()` end to end (letterbox, "
              f"network, NMS); per-round means, backends interleaved; fastest: `{rep['fastest']}`; load average "
              f"{rep['load_avg_before']}. Command: `{rep['command']}`")


def ensemble_selection_table(inp: ReportInputs) -> str:
    """The GPU-trained candidates on PublicTest and the greedy ensemble path, per label set."""
    out = []
    for key, title in (("ensemble_selection_fer2013", "FER-2013 labels"),
                       ("ensemble_selection_ferplus", "FER+ majority labels")):
        rep = inp.get(key)
        if rep is None:
            continue
        chosen = set(rep["chosen"])
        rows = [[f"`{name}`", inp.cards.get(name, {}).get("architecture", "not shipped"),
                 pct(r["accuracy"], 2), pct(r["accuracy_tta"], 2), "yes" if name in chosen else ""]
                for name, r in sorted(rep["candidates"].items(), key=lambda kv: -kv[1]["accuracy_tta"])]
        path = " → ".join(f"{' + '.join(step['members'])}: {pct(step['accuracy'], 2)}" for step in rep["path"])
        args = rep["command"].split()
        name = args[args.index("--name") + 1] if "--name" in args else "the ensemble"
        shipped = f"shipped as `{name}`" if name in inp.cards else f"`{name}` is not shipped"
        out.append(f"**{title}** ({rep['split']}; {shipped})\n\n"
                   + table(["model", "architecture (if shipped)", "accuracy", "accuracy, flip TTA", "in ensemble"], rows)
                   + f"\n\nGreedy path: {path}. Command: `{rep['command']}`")
    if not out:
        return missing("Ensemble selection", "python -m training.select_ensemble ...")
    return "\n\n".join(out)


BLOCKS: dict[str, Callable[[ReportInputs], str]] = {
    "ensemble_selection": ensemble_selection_table,
    "classifier": shipped_classifier_table,
    "per_class": lambda inp: per_class_table(inp, "classifier_emotion_ensemble_PrivateTest"),
    "confusion": lambda inp: confusion_table(inp, "classifier_emotion_ensemble_PrivateTest"),
    "experiments": experiments_table,
    "detection": detection_table,
    "fairness": fairness_table,
    "landmarks": landmarks_table,
    "live": live_table,
    "classifier_speed": classifier_speed_table,
    "detector_speed": detector_speed_table,
    "batch": batch_table,
}
