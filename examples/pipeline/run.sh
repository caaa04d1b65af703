#!/usr/bin/env bash
# run.sh — the model CI/CD pipeline of ci/ run locally on the bundled Fashion-MNIST models:
# validate with gates → publish → promote; a worse candidate is stopped by the gates and the
# stable label does not move; a good candidate is promoted; then a rollback, verify, versions.
#
# usage: examples/pipeline/run.sh [WORKDIR]
#   FERRY=path/to/ferry (default: build/ferry, else ferry on PATH)
#   FERRY_DATA=dir with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz
#              (default: /usr/share/datasets/fashion-mnist)
# Every step checks what it claims; the script exits non-zero on the first surprise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
FERRY=${FERRY:-}
if [ -z "$FERRY" ]; then
  if [ -x "$SRC/build/ferry" ]; then FERRY=$SRC/build/ferry; else FERRY=ferry; fi
fi
DATA=${FERRY_DATA:-/usr/share/datasets/fashion-mnist}
MODELS=$SRC/examples/fashion-mnist
WORK=${1:-$(mktemp -d /tmp/ferry-pipeline-XXXXXX)}
REPO=$WORK/repo
NAME=fashion-mnist
mkdir -p "$WORK"
rm -rf "$REPO" "$WORK"/reports
mkdir -p "$WORK/reports"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "PIPELINE CHECK FAILED: $*" >&2; exit 1; }
label() { # label NAME → its version, from labels.json (what ferry serve reads)
  /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' \
    "$REPO/$NAME/labels.json" "$1"
}

# The same test set and gates CI uses. Latency is not gated here: this runs on shared CI
# machines; in a real pipeline add e.g. --gate 'latency_p95_ms<=baseline*1.2'.
validate() { # validate MODEL REPORT-STEM [extra args...]
  local model=$1 stem=$2
  shift 2
  "$FERRY" validate "$model" \
    --data "$DATA/t10k-images-idx3-ubyte.gz" --labels "$DATA/t10k-labels-idx1-ubyte.gz" \
    --latency-runs 50 \
    --report-md "$WORK/reports/$stem.md" --report-json "$WORK/reports/$stem.json" \
    --quiet "$@"
}

step "1. First model: absolute gates, publish as version 1, promote to stable"
validate "$MODELS/cnn.onnx" v1 --gate 'accuracy>=0.85' --gate 'f1_macro>=0.85' \
  --gate 'size_mb<=50' || fail "cnn.onnx should pass the absolute gates"
V1=$("$FERRY" publish "$MODELS/cnn.onnx" --repo "$REPO" --name "$NAME" \
  --report "$WORK/reports/v1.json" --reason "initial model" --quiet)
[ "$V1" = 1 ] || fail "first publish should be version 1, got $V1"
"$FERRY" promote "$NAME" "$V1" --repo "$REPO" --reason "passed absolute gates"
[ "$(label stable)" = 1 ] || fail "stable should be 1"

step "2. Worse candidate (cnn-weak.onnx) against $NAME@stable: the gates must stop it"
set +e
validate "$MODELS/cnn-weak.onnx" weak --baseline "$REPO/$NAME@stable" \
  --gate 'accuracy>=baseline-0.005' --gate 'f1_macro>=baseline-0.01' --gate 'size_mb<=50' \
  2> "$WORK/reports/weak.err"
rc=$?
set -e
cat "$WORK/reports/weak.err"
echo "(the PR comment a CI job would post: $WORK/reports/weak.md)"
sed -n '1,12p' "$WORK/reports/weak.md"
[ "$rc" = 1 ] || fail "cnn-weak.onnx should fail its gates with exit 1, got $rc"
grep -q 'gate accuracy>=baseline-0.005 failed' "$WORK/reports/weak.err" ||
  fail "the accuracy gate failure should be listed"
grep -q 'gate f1_macro>=baseline-0.01 failed' "$WORK/reports/weak.err" ||
  fail "the f1_macro gate failure should be listed (every failure, not only the first)"
grep -q '❌' "$WORK/reports/weak.md" || fail "the Markdown report should mark the failures"
echo "(a CI job stops here: nothing is published, stable stays at $(label stable))"
[ "$(label stable)" = 1 ] || fail "stable must not move after a failed gate"

step "3. Good candidate against $NAME@stable: passes, published as version 2, promoted"
validate "$MODELS/cnn.onnx" v2 --baseline "$REPO/$NAME@stable" \
  --gate 'accuracy>=baseline-0.005' --gate 'f1_macro>=baseline-0.01' --gate 'size_mb<=50' ||
  fail "cnn.onnx should pass against its own baseline"
V2=$("$FERRY" publish "$MODELS/cnn.onnx" --repo "$REPO" --name "$NAME" \
  --report "$WORK/reports/v2.json" --reason "candidate passed gates vs stable" --quiet)
[ "$V2" = 2 ] || fail "second publish should be version 2, got $V2"
"$FERRY" promote "$NAME" "$V2" --repo "$REPO" --reason "passed gates vs stable"
[ "$(label stable)" = 2 ] || fail "stable should be 2"
set +e
"$FERRY" publish "$MODELS/cnn.onnx" --repo "$REPO" --name "$NAME" --version 2 2>/dev/null
rc=$?
set -e
[ "$rc" = 1 ] || fail "republishing version 2 must be refused with exit 1, got $rc"

step "4. Something is wrong in production: roll stable back"
"$FERRY" rollback "$NAME" --repo "$REPO" --reason "rollback drill"
[ "$(label stable)" = 1 ] || fail "stable should be back at 1"

step "5. Verify every hash, list the versions, show the audit log"
"$FERRY" verify --repo "$REPO"
"$FERRY" versions "$NAME" --repo "$REPO"
cat "$REPO/$NAME/history.jsonl"
[ "$(wc -l < "$REPO/$NAME/history.jsonl")" = 5 ] || fail "history should have 5 entries"

echo
echo "PIPELINE OK (repository: $REPO, reports: $WORK/reports)"
