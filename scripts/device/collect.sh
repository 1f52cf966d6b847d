#!/usr/bin/env bash
# On the GPU machine: bring back weights, cards and logs in $OUT as <=15 MiB tar pieces.
# Runs that have not finished contribute their best checkpoint so far (fp16), marked partial.
mkdir -p /tmp/dev/pack/logs
cp -r /tmp/dev/out/. /tmp/dev/pack/
cp /tmp/dev/logs/* /tmp/dev/pack/logs/ 2>/dev/null
cp /tmp/dev/det/face_yolo/results.csv /tmp/dev/det/face_yolo/args.yaml /tmp/dev/pack/logs/ 2>/dev/null
[ -f /tmp/dev/out/face_yolo.pt ] || cp /tmp/dev/det/face_yolo/weights/best.pt /tmp/dev/pack/face_yolo_partial.pt 2>/dev/null
python3 - <<'PY'
from pathlib import Path
import torch
from safetensors.torch import save_file
for ckpt in Path("runs").glob("*/best.pt"):
    name = ckpt.parent.name
    if not Path(f"/tmp/dev/out/classifiers/{name}.json").exists():
        c = torch.load(ckpt, map_location="cpu")
        save_file({k: v.half().contiguous() if v.is_floating_point() else v.contiguous() for k, v in c["state"].items()},
                  f"/tmp/dev/pack/{name}_partial_epoch{c['epoch']}_acc{c['acc']:.4f}.safetensors")
PY
tar cf - -C /tmp/dev pack | split -b 15M -d - "$OUT/pack.tar."
ls -la "$OUT"
