"""Train several architectures under one recipe and write the experiments table for Model Comparison.

    python -m training.run_experiments --recipe training/configs/experiments/recipe.yaml \
        --configs training/configs/experiments/*.yaml [--epochs N] [--limit N] --json weights/reports/experiments.json

Each run picks its checkpoint on PublicTest; PrivateTest is scored once per finished model. `--epochs` and
`--limit` shrink the recipe for a CPU-only budget; the report records exactly what was run.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from core import settings
from training import provenance
from training.evaluate_classifier import evaluate
from training.recipe import load_recipe
from training.train_classifier import train


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--configs", nargs="+", required=True)
    ap.add_argument("--data", default=str(settings.get().data_dir / "fer2013" / "fer2013.npz"))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for training (recipe default 2)")
    ap.add_argument("--out", default="runs/experiments")
    ap.add_argument("--json", dest="json_out", required=True)
    args = ap.parse_args(argv)
    recipe = load_recipe(args.recipe, epochs=args.epochs, limit=args.limit, threads=args.threads)
    runs = []
    for cfg_path in args.configs:
        if Path(cfg_path).resolve() == Path(args.recipe).resolve():
            continue
        cfg = {**recipe, **load_recipe(cfg_path)}
        t0 = time.time()
        card = train(cfg, Path(args.data), Path(args.out), args.device, cfg_path)
        minutes = (time.time() - t0) / 60
        weights = Path(args.out) / f"{cfg['name']}.json"
        test = evaluate(weights, Path(args.data), "PrivateTest", tta=False)
        runs.append({
            "architecture": cfg["architecture"], "input_size": cfg["input_size"],
            "params_m": round(card["parameters"] / 1e6, 2),
            "public_test_accuracy": round(card["metrics"]["PublicTest"]["accuracy"], 4),
            "private_test_accuracy": round(test["accuracy"], 4), "macro_f1": round(test["macro_f1"], 4),
            "ms_per_face": test["ms_per_face"], "train_minutes": round(minutes, 1),
        })
        print(json.dumps(runs[-1]), flush=True)
    report = {
        "runs": runs, "recipe": recipe, "device": args.device,
        "recipe_note": (f"All architectures trained with the same recipe: {recipe['epochs']} epochs, "
                        f"{recipe.get('optimizer')} one-cycle lr {recipe.get('lr')}, label smoothing "
                        f"{recipe.get('label_smoothing')}, on {args.device}"
                        + (f", first {recipe['limit']} training faces only" if recipe.get("limit") else "")
                        + ". Checkpoints picked on PublicTest; PrivateTest scored once per model; "
                          "ms per face is batch 1 on this machine's CPU."),
    }
    provenance.write_report(args.json_out, report, "training.run_experiments", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
