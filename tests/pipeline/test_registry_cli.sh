#!/usr/bin/env bash
# test_registry_cli.sh — exit codes and messages of ferry publish/promote/rollback/versions/verify
# as scripts and CI jobs see them: 0 ok, 1 refused or a check failed, 2 bad usage or input.
# usage: test_registry_cli.sh FERRY SOURCE_DIR WORKDIR
set -uo pipefail
FERRY=$1 SRC=$2 WORK=$3
M=$SRC/examples/fashion-mnist
R=$WORK/repo
rm -rf "$WORK" && mkdir -p "$WORK"
fails=0
expect() { # expect CODE PATTERN -- command...: exit code and a pattern in stdout+stderr
  local want=$1 pat=$2
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" != "$want" ] || ! grep -qE -- "$pat" <<<"$out"; then
    echo "FAIL: $* -> exit $rc (want $want), output:"
    echo "$out" | sed 's/^/    /'
    fails=$((fails + 1))
  fi
}

expect 0 'usage: ferry publish' -- "$FERRY" publish --help
expect 2 'usage: ferry publish' -- "$FERRY" publish "$M/cnn.onnx"
expect 2 'must be 1-128 characters' -- "$FERRY" publish "$M/cnn.onnx" --repo "$R" --name ../x
expect 2 'not an ONNX model' -- "$FERRY" publish "$M/README.md" --repo "$R" --name m
expect 2 'version must be a positive' -- "$FERRY" publish "$M/cnn.onnx" --repo "$R" --name m --version 0
expect 2 'unknown option' -- "$FERRY" publish "$M/cnn.onnx" --repo "$R" --name m --frobnicate
expect 2 'report .*missing.json' -- "$FERRY" publish "$M/cnn.onnx" --repo "$R" --name m --report "$WORK/missing.json"
[ ! -e "$R/m/1" ] || { echo "FAIL: a publish with a bad --report created a version"; fails=$((fails + 1)); }
expect 0 '^1$' -- "$FERRY" publish "$M/cnn.onnx" --repo "$R" --name m --quiet
expect 0 'version 2 to' -- "$FERRY" publish "$M/cnn-weak.onnx" --repo "$R" --name m --reason "weak one"
expect 1 'already exists' -- "$FERRY" publish "$M/cnn.onnx" --repo "$R" --name m --version 2
expect 1 'no version 9' -- "$FERRY" promote m 9 --repo "$R"
expect 2 'VERSION must be a positive' -- "$FERRY" promote m x --repo "$R"
expect 1 'no model "nope"' -- "$FERRY" promote nope 1 --repo "$R"
expect 1 'label "stable" is not set' -- "$FERRY" rollback m --repo "$R"
expect 0 'label stable -> 1' -- "$FERRY" promote m 1 --repo "$R"
expect 0 'label stable 1 -> 2' -- "$FERRY" promote m 2 --repo "$R" --reason "try the weak one"
expect 0 'rolled back 2 -> 1' -- "$FERRY" rollback m --repo "$R" --reason "it was weak"
expect 1 'nothing to roll back to' -- "$FERRY" rollback m --repo "$R"
expect 0 'all verify' -- "$FERRY" verify --repo "$R"
expect 0 '1 +[0-9T:Z-]+ +stable .* ok' -- "$FERRY" versions m --repo "$R"
expect 2 'no model "nope"' -- "$FERRY" versions nope --repo "$R"

# --json is valid JSON with both versions and the labels.
"$FERRY" versions m --repo "$R" --json > "$WORK/v.json"
/usr/bin/python3 - "$WORK/v.json" <<'PY' || fails=$((fails + 1))
import json, sys
d = json.load(open(sys.argv[1]))
assert d["labels"] == {"stable": 1}, d["labels"]
assert [v["version"] for v in d["versions"]] == [1, 2]
assert all(v["verified"] for v in d["versions"])
assert d["versions"][0]["labels"] == ["stable"]
PY

# history.jsonl: one JSON object per change with who, where, why.
/usr/bin/python3 - "$R/m/history.jsonl" <<'PY' || fails=$((fails + 1))
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["action"] for r in rows] == ["publish", "publish", "promote", "promote", "rollback"], rows
for r in rows:
    assert set(r) == {"time", "user", "host", "action", "version", "label", "previous", "reason"}, r
assert rows[4]["version"] == 1 and rows[4]["previous"] == 2 and rows[4]["reason"] == "it was weak"
PY

# Corrupt version 2 and add a stray file to version 1: verify fails listing both; promoting
# the corrupt version is refused; a temp dir left by a killed publish is ignored.
printf 'X' | dd of="$R/m/2/model.onnx" bs=1 seek=100 conv=notrunc status=none
echo stray > "$R/m/1/notes.txt"
mkdir "$R/m/.tmp-publish-killed"
expect 1 'BAD +m/1: .*notes.txt: not in the manifest' -- "$FERRY" verify --repo "$R"
expect 1 'BAD +m/2: .*model.onnx: sha256 differs' -- "$FERRY" verify --repo "$R" m
expect 1 'sha256 differs' -- "$FERRY" promote m 2 --repo "$R"
expect 0 'BAD' -- "$FERRY" versions m --repo "$R"
expect 2 'cannot open repository' -- "$FERRY" verify --repo "$WORK/missing"

# Processes racing: six publishes for the same --version, exactly one wins (exit 0), the others
# are refused (exit 1); six without --version all get their own number.
pids=()
for i in 1 2 3 4 5 6; do
  "$FERRY" publish "$M/cnn.onnx" --repo "$R" --name race --version 3 >/dev/null 2>&1 &
  pids+=($!)
done
wins=0 refusals=0
for p in "${pids[@]}"; do
  wait "$p"
  case $? in 0) wins=$((wins + 1)) ;; 1) refusals=$((refusals + 1)) ;; esac
done
[ "$wins" = 1 ] && [ "$refusals" = 5 ] || { echo "FAIL: race for version 3: $wins wins, $refusals refusals"; fails=$((fails + 1)); }
pids=()
for i in 1 2 3 4 5 6; do
  "$FERRY" publish "$M/cnn.onnx" --repo "$R" --name race --quiet >> "$WORK/race.txt" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { echo "FAIL: a racing publish failed"; fails=$((fails + 1)); }; done
[ "$(sort -n "$WORK/race.txt" | tr '\n' ' ')" = "4 5 6 7 8 9 " ] ||
  { echo "FAIL: racing publishes got versions: $(tr '\n' ' ' < "$WORK/race.txt")"; fails=$((fails + 1)); }
expect 0 '7 versions of 1 model checked: all verify' -- "$FERRY" verify --repo "$R" race

[ "$fails" = 0 ] && echo "registry CLI: all checks passed" || { echo "$fails check(s) failed"; exit 1; }
