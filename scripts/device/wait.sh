#!/usr/bin/env bash
# On the GPU machine: wait up to SECONDS for all six runs to finish, then show where each stands.
end=$((SECONDS + $1))
while [ $SECONDS -lt $end ]; do
  n=$(ls /tmp/dev/logs/*.done /tmp/dev/logs/*.failed 2>/dev/null | wc -l)
  [ "$n" -ge 6 ] && break
  sleep 5
done
for f in /tmp/dev/logs/*.log; do echo "== $f"; grep -v '^ *$' "$f" | tail -n 2 | cut -c1-300; done
ls /tmp/dev/logs/ | grep -E 'done|failed'
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
