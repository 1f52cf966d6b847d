#!/usr/bin/env bash
# `make deploy-local`: the whole deployment on this machine, on 127.0.0.1 only: nginx in front of the
# Streamlit app (/) and N gunicorn replicas of the REST API (/api/). Ctrl-C (or SIGTERM) stops everything.
# Ports: EMOLENS_DEPLOY_PORT (nginx, 8080), EMOLENS_DEPLOY_APP_PORT (8501), EMOLENS_DEPLOY_API_PORT (first
# replica, 8001), EMOLENS_DEPLOY_REPLICAS (2). Logs and nginx's scratch files go to EMOLENS_DEPLOY_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
PORT="${EMOLENS_DEPLOY_PORT:-8080}"
APP_PORT="${EMOLENS_DEPLOY_APP_PORT:-8501}"
API_PORT="${EMOLENS_DEPLOY_API_PORT:-8001}"
REPLICAS="${EMOLENS_DEPLOY_REPLICAS:-2}"
DIR="${EMOLENS_DEPLOY_DIR:-.cache/deploy-local}"
NGINX="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
[ -x "$NGINX" ] || { echo "nginx is not installed (Debian: apt-get install nginx)"; exit 1; }
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM

api_ports=()
gunicorn_conf=()
[ -f deploy/gunicorn.conf.py ] && gunicorn_conf=(-c deploy/gunicorn.conf.py)
for i in $(seq 0 $((REPLICAS - 1))); do
  p=$((API_PORT + i)); api_ports+=("$p")
  "$PY" -m gunicorn "${gunicorn_conf[@]}" --bind "127.0.0.1:$p" --control-socket "$DIR/api-$p.ctl" core.api:app \
    >"$DIR/api-$p.log" 2>&1 &
  pids+=($!)
done
"$PY" -m streamlit run Home.py --server.address 127.0.0.1 --server.port "$APP_PORT" --server.headless true \
  >"$DIR/app.log" 2>&1 &
pids+=($!)
"$PY" deploy/render_nginx.py --standalone --prefix "$DIR" --listen "127.0.0.1:$PORT" --app-port "$APP_PORT" \
  --api-ports "${api_ports[@]}" >"$DIR/nginx.conf"
"$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/error.log" &
pids+=($!)
echo "EmoLens on http://127.0.0.1:$PORT/ (API: http://127.0.0.1:$PORT/api/v1/predict); logs in $DIR. Ctrl-C stops it."
wait -n "${pids[@]}"  # one process ended: stop the rest rather than serve half a deployment
echo "A process of the deployment stopped; see the logs in $DIR." >&2
exit 1
