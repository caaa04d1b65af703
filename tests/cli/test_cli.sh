#!/usr/bin/env bash
# test_cli.sh FERRY SOURCE_DIR WORK_DIR — the CLI's exit codes and messages for good and bad
# input (DESIGN.md: 0 ok, 1 check failed, 2 usage or input error, 3 internal error).
set -u
ferry=$1 src=$2 work=$3
model=$src/examples/fashion-mnist/mlp.onnx
image=$src/examples/fashion-mnist/ankle-boot.npy
rm -rf "$work" && mkdir -p "$work"
failures=0

# expect CODE PATTERN -- COMMAND...: runs COMMAND, checks the exit code and that stdout+stderr
# match the extended regex PATTERN.
expect() {
  local code=$1 pattern=$2; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: $* -> exit $rc (want $code), output:"; echo "$out" | head -20
    echo "      (wanted /$pattern/)"
    failures=$((failures + 1))
  else
    echo "ok:   $*"
  fi
}

expect 2 "usage: ferry"                  -- "$ferry"
expect 0 "commands:"                     -- "$ferry" --help
expect 2 "unknown command"               -- "$ferry" frobnicate
for cmd in inspect run bench conformance; do
  expect 0 "usage: ferry $cmd"           -- "$ferry" "$cmd" --help
done

# inspect
expect 0 "input +input +float32\[batch,784\]" -- "$ferry" inspect "$model"
expect 0 "supported: +yes"               -- "$ferry" inspect "$model"
# 2 FLOPs per multiply-add of the three layers: 2 * (784*64 + 64*64 + 64*10) = 109824
expect 0 '"flops": 109824,'              -- "$ferry" inspect --json "$model"
expect 2 "cannot open .*missing.onnx"    -- "$ferry" inspect "$work/missing.onnx"
head -c 100 "$model" > "$work/truncated.onnx"
expect 2 "cannot load model"             -- "$ferry" inspect "$work/truncated.onnx"
printf 'garbage\xff\xff' > "$work/garbage.onnx"
expect 2 "protobuf decoding failed"      -- "$ferry" inspect "$work/garbage.onnx"

# run
expect 0 "argmax: 9"                     -- "$ferry" run "$model" --input "$image"
expect 0 "wrote .*/logits.npy"           -- "$ferry" run "$model" --input "input=$image" --output-dir "$work/out"
[ -s "$work/out/logits.npy" ] || { echo "FAIL: logits.npy not written"; failures=$((failures + 1)); }
expect 2 "no input named \"nosuch\""     -- "$ferry" run "$model" --input "nosuch=$image"
expect 2 "only 1 inputs"                 -- "$ferry" run "$model" --input "$image" --input "$image"
expect 2 "input \"input\" is required"   -- "$ferry" run "$model"
expect 2 "not a .npy file"               -- "$ferry" run "$model" --input "$work/garbage.onnx"
expect 2 "--threads needs"               -- "$ferry" run "$model" --threads many

# bench
expect 0 "median [0-9.]+ ms"             -- "$ferry" bench "$model" --iterations 5 --warmup 1
for key in load_ms first_run_ms min_ms median_ms p90_ms p99_ms throughput_per_s peak_rss_mb; do
  expect 0 "^\{.*\"$key\": [0-9][0-9.e+-]*[,}].*\}$" -- "$ferry" bench "$model" --json --iterations 5 --batch 4
done
expect 0 '"top_nodes": \[\{"name": "[^"]+", "op": "(Fused)?Gemm"' -- "$ferry" bench "$model" --json --iterations 3 --profile 2
expect 0 "ms per call"                   -- "$ferry" bench "$model" --iterations 3 --input "input=$image" --profile
expect 2 "--iterations needs a positive" -- "$ferry" bench "$model" --iterations 0
expect 2 "--batch needs a positive"      -- "$ferry" bench "$model" --batch x
expect 2 "no input named \"nosuch\""     -- "$ferry" bench "$model" --shape nosuch=1,784
expect 2 "dim 1 of input \"input\" is 784" -- "$ferry" bench "$model" --shape input=1,783
expect 2 "DIMS must be positive"         -- "$ferry" bench "$model" --shape input=1,,784
expect 2 "unexpected argument"           -- "$ferry" bench "$model" --frobnicate
expect 2 "no MODEL given"                -- "$ferry" bench --json
expect 2 "cannot load model"             -- "$ferry" bench "$work/truncated.onnx"

# external data: the same model with its weights in a file beside it (mapped, bounds-checked)
mkdir -p "$work/ext"
/usr/bin/python3 - "$model" "$work/ext" <<'PY'
import sys, onnx
from onnx.external_data_helper import convert_model_to_external_data
m = onnx.load(sys.argv[1])
convert_model_to_external_data(m, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
onnx.save_model(m, sys.argv[2] + "/model.onnx")
for t in m.graph.initializer:  # a copy whose weights claim to live outside the model's folder
    for e in t.external_data:
        if e.key == "location": e.value = "../weights.bin"
onnx.save_model(m, sys.argv[2] + "/escape.onnx")
PY
expect 0 "argmax: 9"                     -- "$ferry" run "$work/ext/model.onnx" --input "$image"
expect 2 "must be a relative path beside the model" -- "$ferry" run "$work/ext/escape.onnx" --input "$image"
cp "$work/ext/weights.bin" "$work/ext/full.bin"
head -c 1000 "$work/ext/full.bin" > "$work/ext/weights.bin"
expect 2 "external data .* does not hold"  -- "$ferry" run "$work/ext/model.onnx" --input "$image"
rm "$work/ext/weights.bin"
expect 2 "cannot open external data file" -- "$ferry" run "$work/ext/model.onnx" --input "$image"

# conformance
expect 2 "not a test folder"             -- "$ferry" conformance "$work/nothing-here"
expect 0 "1 passed, 0 failed"            -- "$ferry" conformance /usr/share/libonnx-testdata/data/node/test_identity

if [ "$failures" -ne 0 ]; then echo "$failures CLI check(s) failed"; exit 1; fi
echo "all CLI checks passed"
