"""Fairness audit: how the served model's accuracy differs between groups of people.

    python -m training.audit_fairness --data ../shared/data/fairness --json weights/reports/fairness.json

`--data` is a labelled set as `core.datasets.labelled` reads it: a folder with `labels.csv` (file, emotion,
optional x1..y2, subject, source, attribute columns) or a zip of images + `labels.csv`; bad rows are listed
by CSV line and left out, the audit goes on. Every image goes through the serving `EmotionPipeline` (detect the
face; an image that already is a face crop is classified whole, see `--face`). Groups are compared within
each `source`, with bootstrap intervals that resample subjects. The JSON (a stable contract) has `groups`
-> attribute -> group -> {n, accuracy, accuracy_ci, macro_f1, ...} and `gaps` -> attribute -> metric,
plus the command, the commit and the data it ran on. Per-image predictions go only to `--predictions`.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from core import settings
from core.datasets.labelled import LabelledSet, read_labelled
from core.detection import available_detectors
from core.errors import UserFacingError
from core.fairness.audit import FACE_MODE_HELP, FACE_MODES, audit_dataset, audit_faces, sample_set
from core.fairness.metrics import BootstrapConfig, FairnessAudit, metric_label
from training import provenance


def data_fingerprint(path: Path, dataset: LabelledSet) -> dict[str, Any]:
    """What the audit ran on: the path as given and a hash of the labels (or the zip; class folders: the names)."""
    src = path / dataset.labels_file if path.is_dir() and dataset.labels_file else path
    digest = hashlib.sha256(src.read_bytes() if src.is_file() else "\n".join(dataset.images).encode()).hexdigest()
    return {"path": str(path), "labels": dataset.csv_name, "sha256": digest,
            "rows_valid": len(audit_faces(dataset)), "rows_skipped": len(dataset.problems)}


def summary_lines(audit: FairnessAudit) -> list[str]:
    """A short plain-text view of the audit for the terminal."""
    lines = []
    for key, a in audit.attributes.items():
        lines.append(f"{key}  (n={a.n}, missing={a.n_missing}, resampled by {a.resampled_by})")
        for g in a.groups.values():
            ci = f"[{g.accuracy_ci[0]:.3f}, {g.accuracy_ci[1]:.3f}]" if g.accuracy_ci else "[n/a]"
            f1 = f"{g.macro_f1:.3f}" if g.macro_f1 is not None else "n/a"
            who = f", {g.n_subjects} people" if g.n_subjects is not None else ""
            lines.append(f"  {g.group:<18} n={g.n:<4}{who}  accuracy {g.accuracy:.3f} {ci}  macro-F1 {f1}"
                         + ("  (too few)" if g.too_few else ""))
        for metric in ("accuracy", "macro_f1"):
            gap = a.gaps[metric]
            if gap.gap is None:
                lines.append(f"  {metric_label(metric)} gap: n/a ({gap.note})")
            else:
                lines.append(f"  {metric_label(metric)} gap {gap.gap:.3f} [{gap.ci[0]:.3f}, {gap.ci[1]:.3f}] "
                             f"({gap.high} vs {gap.low})" + ("  FLAGGED" if gap.flagged else ""))
    flagged = audit.flagged()
    lines.append(f"{len(flagged)} gap(s) whose {audit.config.level:.0%} interval excludes zero"
                 + (": " + "; ".join(f"{k} {metric_label(g.metric)}" for k, g in flagged) if flagged else "."))
    lines += [f"skipped: {s}" for s in audit.skipped]
    return lines


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.audit_fairness", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(settings.get().data_dir / "fairness"), help="folder with labels.csv, or a zip")
    ap.add_argument("--json", dest="json_out", default=None, help="write the report here")
    ap.add_argument("--predictions", default=None, help="also write per-image predictions (CSV) here")
    ap.add_argument("--model", default=None, help="emotion model name in the weights folder (default: shipped)")
    ap.add_argument("--detector", default=settings.get().detector, choices=available_detectors())
    ap.add_argument("--threshold", type=float, default=None, help="detector score threshold (0-1)")
    ap.add_argument("--face", default="auto", choices=FACE_MODES,
                    help="; ".join(f"{k}: {v}" for k, v in FACE_MODE_HELP.items()))
    ap.add_argument("--attributes", default=None, help="comma-separated columns (default: every attribute column)")
    ap.add_argument("--within", default="auto", help="compare groups within this column ('auto': source if "
                                                     "present; 'none': across the whole set)")
    ap.add_argument("--bootstrap", type=int, default=settings.get().fairness_bootstrap, help="resamples per interval")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-group", type=int, default=settings.get().min_group_size,
                    help="groups with fewer faces are marked 'too few' and left out of gaps")
    ap.add_argument("--limit", type=int, default=None, help="audit a seeded random sample of this many rows")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bootstrap < 100:
        print("error: --bootstrap needs at least 100 resamples for a 95% interval.", file=sys.stderr)
        return 2
    try:
        dataset = read_labelled(args.data, strict=False)
        audit_faces(dataset)  # refuses a set with no usable row, or too many, before the models load
        if args.limit:
            dataset = sample_set(dataset, args.limit, seed=args.seed)
        from core.pipeline import EmotionPipeline

        pipeline = EmotionPipeline.create(args.detector, args.threshold, args.model)
        card = pipeline.classifier.card
        meta = {
            "report": "fairness_audit", "schema": 1,
            "command": provenance.command_line("training.audit_fairness", argv),
            "commit": provenance.git_commit(), "created": provenance.utc_now(),
            "data": data_fingerprint(Path(args.data), dataset),
            "model": {"name": card.name, "architecture": card.architecture,
                      "trained_at_commit": card.raw.get("commit"), "training_data": card.raw.get("training_data")},
            "detector": {"name": args.detector, "threshold": pipeline.detector.threshold},
        }
        attributes = [a.strip() for a in args.attributes.split(",") if a.strip()] if args.attributes else None
        within = None if args.within == "none" else args.within
        if within not in (None, "auto") and within not in dataset.extra_columns:
            raise UserFacingError(f"--within {within}: there is no such column in {dataset.csv_name}.")
        config = BootstrapConfig(resamples=args.bootstrap, seed=args.seed, min_group_size=args.min_group)
        total = len(audit_faces(dataset))

        def progress(i: int, n: int) -> None:
            if i % 100 == 0 or i == n:
                print(f"analysed {i}/{n} images", file=sys.stderr, flush=True)

        run = audit_dataset(pipeline, dataset, attributes, face_mode=args.face, within=within, config=config,
                            progress=progress if total > 100 else None, meta=meta)
    except (UserFacingError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for why, n in dataset.left_out().items():
        print(f"left out: {n} row(s) {why}", file=sys.stderr)
    for problem in run.problems[:20]:
        print(f"skipped: {problem}", file=sys.stderr)
    if len(run.problems) > 20:
        print(f"... and {len(run.problems) - 20} more skipped rows", file=sys.stderr)
    print("\n".join(summary_lines(run.audit)))
    if args.json_out:
        provenance.write_json(args.json_out, run.audit.to_dict())
        print(f"report written to {args.json_out}")
    if args.predictions:
        Path(args.predictions).parent.mkdir(parents=True, exist_ok=True)
        Path(args.predictions).write_bytes(run.predictions_csv())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
