#!/usr/bin/env bash
# On the GPU machine: start the five classifier runs, detached, sharing the GPU.
# Usage: bash scripts/device/start_classifiers.sh BUDGET_MINUTES
set -e
budget=$1
python3 scripts/device/unpack_fer.py /tmp/dev/in /tmp/dev/fer
for cfg in fer_vgg_m fer_resnet18s fer_vgg_s ferplus_vgg_m ferplus_vgg_s; do
  OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 setsid nohup bash -c "python3 -m training.train_classifier \
    --config training/configs/gpu/$cfg.yaml --data /tmp/dev/fer/fer2013.npz --out /tmp/dev/out/classifiers \
    --device cuda --time-budget-min $budget --half-weights > /tmp/dev/logs/$cfg.log 2>&1 \
    && touch /tmp/dev/logs/$cfg.done || touch /tmp/dev/logs/$cfg.failed" > /dev/null 2>&1 &
done
sleep 45
tail -n 3 /tmp/dev/logs/*.log
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv
