#!/usr/bin/env bash
# On the GPU machine: keep this call's carried pieces in /tmp/dev/in (it outlives calls while the machine
# stays warm) and install the carried wheels once. Usage: bash scripts/device/receive.sh
set -e
mkdir -p /tmp/dev/in /tmp/dev/logs /tmp/dev/out
for f in .gpu/call*/*; do [ -f "$f" ] && cp "$f" /tmp/dev/in/; done
if [ -d .whl ] && [ ! -d /tmp/site/ultralytics ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
ls -la /tmp/dev/in | tail -n +2
