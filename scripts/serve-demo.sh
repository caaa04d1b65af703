#!/usr/bin/env bash
# serve-demo.sh — the `ferry serve` part of `make demo`: serve the bundled example repository,
# wait until it is ready, send one KServe v2 request with curl (the ankle-boot image), print the
# answer, then stop the server with SIGTERM. Usage: scripts/serve-demo.sh path/to/ferry [port]
set -euo pipefail
FERRY=${1:?usage: serve-demo.sh FERRY [PORT]}
PORT=${2:-8000}
URL=http://127.0.0.1:$PORT
LOG=$(mktemp)
BODY=$(mktemp)
trap 'rm -f "$LOG" "$BODY"' EXIT

# The request body: the .npy file's 784 float32 values as a v2 JSON tensor. numpy is not assumed,
# so the header is skipped by its declared length and the floats are read with od.
NPY=examples/fashion-mnist/ankle-boot.npy
HLEN=$(od -An -t u2 -j 8 -N 2 "$NPY" | tr -d ' ')
DATA=$(od -An -v -t f4 -j $((10 + HLEN)) "$NPY" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
printf '{"id":"demo","inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":[%s]}]}' \
    "$DATA" > "$BODY"

"$FERRY" serve --repo examples/repository --port "$PORT" 2> "$LOG" &
PID=$!
for _ in $(seq 1 100); do
    if curl -sf "$URL/v2/health/ready" > /dev/null; then break; fi
    if ! kill -0 "$PID" 2> /dev/null; then cat "$LOG"; echo "ferry serve exited early" >&2; exit 1; fi
    sleep 0.1
done
echo "ferry serve is ready on $URL; POST $URL/v2/models/fashion-mnist/infer:"
curl -sS -X POST -H 'Content-Type: application/json' --data-binary @"$BODY" \
    "$URL/v2/models/fashion-mnist/infer"
echo
kill -TERM "$PID"
wait "$PID"
echo "ferry serve stopped cleanly (exit 0) after SIGTERM; its log:"
cat "$LOG"
