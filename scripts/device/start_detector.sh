#!/usr/bin/env bash
# On the GPU machine: reassemble the faces set and start YOLO training, detached.
# Usage: bash scripts/device/start_detector.sh HOURS
set -e
hours=$1
mkdir -p /tmp/dev/faces
cat /tmp/dev/in/faces.tar.* | tar xf - -C /tmp/dev/faces
# zero-byte stand-ins keep split_train's seeded tune slice identical; they are never read
while read -r name; do : > "/tmp/dev/faces/images/train/$name"; done < /tmp/dev/faces/tune_names.txt
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
setsid nohup bash -c "python3 -m training.train_detector --config training/configs/face_yolo_gpu.yaml \
  --data /tmp/dev/faces --device 0 --hours $hours --out /tmp/dev/det --weights-out /tmp/dev/out/face_yolo.pt \
  > /tmp/dev/logs/yolo.log 2>&1 && touch /tmp/dev/logs/yolo.done || touch /tmp/dev/logs/yolo.failed" > /dev/null 2>&1 &
sleep 40
tail -n 5 /tmp/dev/logs/yolo.log
tail -n 1 /tmp/dev/logs/fer_*.log
