#!/usr/bin/env bash
# test_optimize.sh — `ferry optimize` end to end on the bundled Fashion-MNIST models and real
# test images: usage errors, every level, fp16 (size, error, accuracy), pruning, external data,
# reports; with `ort` as MODE, every written model is also run in ONNX Runtime and compared
# with ferry (skipped, exit 77, when onnxruntime-node is not installed and cannot be).
# usage: test_optimize.sh cli|ort FERRY SOURCE_DIR WORK_DIR
set -u
MODE=$1 FERRY=$2 SRC=$3 WORK=$4
SKIP=77
DATA=/usr/share/datasets/fashion-mnist
MODELS=$SRC/examples/fashion-mnist
N=${FERRY_OPTIMIZE_TEST_IMAGES:-500}
fail=0
rm -rf "$WORK" && mkdir -p "$WORK" || exit 3

. "$SRC/tests/optimize/common.sh"

node "$SRC/tests/optimize/idx_to_npy.js" $DATA/t10k-images-idx3-ubyte.gz $DATA/t10k-labels-idx1-ubyte.gz \
     "$N" "$WORK/x4d.npy" "$WORK/y.npy" --shape4d || exit 3
node "$SRC/tests/optimize/idx_to_npy.js" $DATA/t10k-images-idx3-ubyte.gz $DATA/t10k-labels-idx1-ubyte.gz \
     "$N" "$WORK/x784.npy" "$WORK/y.npy" || exit 3

input_for() { case $1 in mlp) echo "$WORK/x784.npy" ;; *) echo "$WORK/x4d.npy" ;; esac; }

# ---- the cases: NAME MODEL OPTIONS... (every one is written, then checked) ----
CASES=(
  "mlp-none mlp --level none"
  "mlp-basic mlp --level basic"
  "mlp-extended mlp --level extended"
  "mlp-all mlp --level all"
  "cnn-none cnn --level none"
  "cnn-basic cnn --level basic"
  "cnn-extended cnn --level extended"
  "cnn-all cnn --level all"
  "cnn-fp16 cnn --fp16"
  "mlp-fp16 mlp --fp16 --level basic"
  "cnn-prune cnn --prune 0.5"
  "cnn-prune-structured cnn --prune 0.25 --structured --per-layer"
  "cnn-external cnn --external-data"
)

write_case() { # name model opts...
    local name=$1 model=$2; shift 2
    local eval=()
    [ "$MODE" = cli ] && eval=(--eval "$(input_for $model)" --labels "$WORK/y.npy")
    "$FERRY" optimize "$MODELS/$model.onnx" -o "$WORK/$name.onnx" "$@" --bench-runs 3 \
        "${eval[@]}" --report "$WORK/$name.json"
}

for c in "${CASES[@]}"; do
    set -- $c
    check "write $1" write_case "$@"
done

if [ "$MODE" = cli ]; then
    check "usage: no output" expect_rc 2 "$FERRY" optimize "$MODELS/mlp.onnx"
    check "usage: bad level" expect_rc 2 "$FERRY" optimize "$MODELS/mlp.onnx" -o "$WORK/x.onnx" --level max
    check "usage: bad sparsity" expect_rc 2 "$FERRY" optimize "$MODELS/mlp.onnx" -o "$WORK/x.onnx" --prune 1.5
    check "usage: --structured alone" expect_rc 2 "$FERRY" optimize "$MODELS/mlp.onnx" -o "$WORK/x.onnx" --structured
    check "usage: report extension" expect_rc 2 "$FERRY" optimize "$MODELS/mlp.onnx" -o "$WORK/x.onnx" --report r.txt
    check "input: missing model" expect_rc 2 "$FERRY" optimize "$WORK/nope.onnx" -o "$WORK/x.onnx"
    check "input: output over input" expect_rc 2 "$FERRY" optimize "$MODELS/mlp.onnx" -o "$MODELS/mlp.onnx"
    check "input: unwritable output" expect_rc 2 "$FERRY" optimize "$MODELS/mlp.onnx" -o /nonexistent/x.onnx --bench-runs 0
    check "help" expect_rc 0 "$FERRY" optimize --help
    # float levels change nothing in the outputs beyond rounding; fused ops are in the graph
    for l in none basic extended all; do
        for m in mlp cnn; do
            check "$m-$l: same outputs" json "$WORK/$m-$l.json" \
                'r.accuracy.max_relative_error < 1e-5 && r.accuracy.top1_agreement == 1'
        done
    done
    check "cnn-extended: Conv+Relu fused" json "$WORK/cnn-extended.json" 'r.size.nodes_after < r.size.nodes_before'
    check "cnn-extended: fused ops written" bash -c "'$FERRY' inspect '$WORK/cnn-extended.onnx' | grep -q 'com.microsoft:FusedConv'"
    check "metadata: producer ferry" bash -c "'$FERRY' inspect '$WORK/cnn-fp16.onnx' | grep -q 'producer:   ferry'"
    # fp16: half the file, outputs within 1e-2, accuracy kept
    for m in cnn mlp; do
        check "$m-fp16: file <= 0.52x" json "$WORK/$m-fp16.json" 'r.size.file_ratio <= 0.52'
        check "$m-fp16: outputs within 1e-2" json "$WORK/$m-fp16.json" 'r.accuracy.max_relative_error <= 1e-2'
        check "$m-fp16: accuracy within 0.5 points" json "$WORK/$m-fp16.json" \
            'Math.abs(r.accuracy.accuracy_after - r.accuracy.accuracy_before) <= 0.005 && r.accuracy.top1_agreement >= 0.99'
    done
    check "fp16 of a fused (extended) model halves it too" bash -c "'$FERRY' optimize '$WORK/cnn-extended.onnx' \
        -o '$WORK/f16f.onnx' --fp16 --bench-runs 0 --report '$WORK/f16f.json' >/dev/null && \
        node -e 'const r=require(\"$WORK/f16f.json\"); process.exit(r.size.file_ratio <= 0.52 ? 0 : 1)'"
    check "cnn-fp16: keep list honoured" bash -c "'$FERRY' optimize '$MODELS/cnn.onnx' -o '$WORK/k.onnx' --fp16 \
        --keep-fp32 Gemm,FusedGemm --bench-runs 0 --report '$WORK/k.json' >/dev/null && \
        node -e 'const r=require(\"$WORK/k.json\"); process.exit(r.fp16.kept_fp32.length >= 2 ? 0 : 1)'"
    # pruning: sparsity reached, per-layer table, accuracy not destroyed at 50%
    check "cnn-prune: 50% sparsity" json "$WORK/cnn-prune.json" \
        'Math.abs(r.pruning.sparsity - 0.5) < 0.01 && r.pruning.layers.length == 4'
    check "cnn-prune: accuracy within 2 points" json "$WORK/cnn-prune.json" \
        'r.accuracy.accuracy_before - r.accuracy.accuracy_after < 0.02'
    check "cnn-prune-structured: channels pruned" json "$WORK/cnn-prune-structured.json" \
        'r.pruning.layers.filter(l => l.channels && l.channels_pruned == Math.floor(l.channels * 0.25)).length >= 2'
    # external data: small model file, weights beside it, runs
    check "external: data file" test -s "$WORK/cnn-external.onnx.data"
    check "external: model file small" test "$(stat -c %s "$WORK/cnn-external.onnx")" -lt 20000
    check "external: runs" "$FERRY" run "$WORK/cnn-external.onnx" --input "$WORK/x4d.npy"
    check "eval on IDX files directly" bash -c "'$FERRY' optimize '$MODELS/mlp.onnx' -o '$WORK/idx.onnx' --bench-runs 0 \
        --eval $DATA/t10k-images-idx3-ubyte.gz --labels $DATA/t10k-labels-idx1-ubyte.gz --eval-limit 300 \
        --report '$WORK/idx.json' >/dev/null && node -e 'const r=require(\"$WORK/idx.json\");
        process.exit(r.accuracy.accuracy_before > 0.8 && r.accuracy.top1_agreement == 1 ? 0 : 1)'"
    check "markdown report" bash -c "'$FERRY' optimize '$MODELS/mlp.onnx' -o '$WORK/md.onnx' --fp16 --bench-runs 2 \
        --report '$WORK/r.md' >/dev/null && grep -q '| file bytes |' '$WORK/r.md' && grep -q 'latency' '$WORK/r.md'"
fi

if [ "$MODE" = ort ]; then
    MODS=${FERRY_ORT_MODULES:-$SRC/bench/.deps/node_modules}
    if [ ! -d "$MODS/onnxruntime-node" ] && command -v npm >/dev/null && [ -z "${FERRY_ORT_NO_INSTALL:-}" ]; then
        echo "installing onnxruntime-node into $SRC/bench/.deps (npm, --ignore-scripts)"
        mkdir -p "$SRC/bench/.deps"
        timeout 180 npm install --ignore-scripts --no-audit --no-fund --prefix "$SRC/bench/.deps" \
            onnxruntime-node > "$WORK/npm.log" 2>&1 || tail -3 "$WORK/npm.log"
    fi
    [ -d "$MODS/onnxruntime-node" ] || { echo "onnxruntime-node is not installed and npm cannot fetch it: skipping"; exit $SKIP; }
    export FERRY_ORT_MODULES=$MODS
    for c in "${CASES[@]}"; do
        set -- $c
        name=$1 model=$2 x=$(input_for $2)
        "$FERRY" run "$WORK/$name.onnx" --input "$x" --output-dir "$WORK/out-$name" > /dev/null 2>&1
        tol="--rtol 1e-4 --min-agreement 1"
        case $name in *fp16*) tol="--rtol 1e-2 --min-agreement 0.995" ;; esac
        check "onnxruntime runs $name like ferry" node "$SRC/tests/optimize/ort_check.js" \
            "$WORK/$name.onnx" "$x" "$WORK/out-$name/logits.npy" $tol
        cat "$WORK/last.log" | grep -o '"max_rel_error".*' | sed 's/^/     /'
    done
    # every activation ferry fuses into FusedConv/FusedGemm runs in ONNX Runtime
    if /usr/bin/python3 "$SRC/tests/optimize/make_act_models.py" "$WORK/act" 2>/dev/null; then
        for f in "$WORK"/act/conv_*.onnx "$WORK"/act/gemm_*.onnx; do
            b=$(basename "$f" .onnx) x=$WORK/act/x4.npy
            case $b in gemm_*) x=$WORK/act/x2.npy ;; esac
            "$FERRY" optimize "$f" -o "$WORK/act/$b.opt.onnx" --bench-runs 0 > /dev/null 2>&1
            "$FERRY" run "$WORK/act/$b.opt.onnx" --input "$x" --output-dir "$WORK/act/out-$b" > /dev/null 2>&1
            check "onnxruntime runs fused $b" bash -c "'$FERRY' inspect '$WORK/act/$b.opt.onnx' | grep -q 'com.microsoft:Fused' &&
                node '$SRC/tests/optimize/ort_check.js' '$WORK/act/$b.opt.onnx' '$x' '$WORK/act/out-$b/y.npy' --rtol 1e-5 --min-agreement 0"
        done
    else
        echo "no python3 with onnx: fused-activation models not checked"
    fi
fi

echo "$fail failure(s)"
[ $fail -eq 0 ]
