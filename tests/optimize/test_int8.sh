#!/usr/bin/env bash
# test_int8.sh — `ferry optimize --int8` end to end on real Fashion-MNIST data: the CNN
# quantized static (QDQ) with each calibration method, calibrated on training images and
# measured on test images (file ratio, accuracy drop, per-layer SQNR), the MLP quantized
# dynamic, the accuracy-aware search, usage errors; with `ort` as MODE, every written model is
# also run in ONNX Runtime and must give ferry's top-1 (exit 77 when onnxruntime-node is absent).
# usage: test_int8.sh cli|ort FERRY SOURCE_DIR WORK_DIR
set -u
MODE=$1 FERRY=$2 SRC=$3 WORK=$4
SKIP=77
DATA=/usr/share/datasets/fashion-mnist
MODELS=$SRC/examples/fashion-mnist
# sanitizer builds run ~20x slower: a subset there keeps the test under two minutes
if grep -q __asan_init "$FERRY" 2>/dev/null; then N=${FERRY_INT8_TEST_IMAGES:-1000} C=200
else N=${FERRY_INT8_TEST_IMAGES:-10000} C=1000; fi
fail=0
rm -rf "$WORK" && mkdir -p "$WORK" || exit 3

. "$SRC/tests/optimize/common.sh"

I2N="$SRC/tests/optimize/idx_to_npy.js"
node "$I2N" $DATA/t10k-images-idx3-ubyte.gz $DATA/t10k-labels-idx1-ubyte.gz "$N" "$WORK/x4d.npy" "$WORK/y.npy" --shape4d || exit 3
node "$I2N" $DATA/t10k-images-idx3-ubyte.gz $DATA/t10k-labels-idx1-ubyte.gz "$N" "$WORK/x784.npy" "$WORK/y.npy" || exit 3
# calibration: training images, disjoint from the test images
node "$I2N" $DATA/train-images-idx3-ubyte.gz $DATA/train-labels-idx1-ubyte.gz "$C" "$WORK/c4d.npy" "$WORK/cy.npy" --shape4d || exit 3
node "$I2N" $DATA/train-images-idx3-ubyte.gz $DATA/train-labels-idx1-ubyte.gz "$C" "$WORK/c784.npy" "$WORK/cy.npy" || exit 3

CASES=(
  "cnn-static cnn x4d --int8 static --calibration $WORK/c4d.npy"
  "cnn-percentile cnn x4d --int8 static --calibration $WORK/c4d.npy --calibrate percentile"
  "cnn-entropy cnn x4d --int8 static --calibration $WORK/c4d.npy --calibrate entropy"
  "cnn-reduce cnn x4d --int8 static --calibration $WORK/c4d.npy --reduce-range on --per-tensor"
  "mlp-static mlp x784 --int8 static --calibration $WORK/c784.npy"
  "mlp-dynamic mlp x784 --int8 dynamic"
  "cnn-keep cnn x4d --int8 static --calibration $WORK/c4d.npy --keep-float /0/Conv"
)
for c in "${CASES[@]}"; do
    set -- $c
    name=$1 model=$2 x=$3; shift 3
    check "write $name" "$FERRY" optimize "$MODELS/$model.onnx" -o "$WORK/$name.onnx" "$@" \
        --eval "$WORK/$x.npy" --labels "$WORK/y.npy" --bench-runs 3 --report "$WORK/$name.json"
done

if [ "$MODE" = cli ]; then
    check "usage: static without calibration" expect_rc 2 "$FERRY" optimize "$MODELS/cnn.onnx" -o "$WORK/x.onnx" --int8 static
    check "usage: bad mode" expect_rc 2 "$FERRY" optimize "$MODELS/cnn.onnx" -o "$WORK/x.onnx" --int8 int4
    check "usage: bad method" expect_rc 2 "$FERRY" optimize "$MODELS/cnn.onnx" -o "$WORK/x.onnx" --int8 static \
        --calibration "$WORK/c4d.npy" --calibrate magic
    check "usage: budget without labels" expect_rc 2 "$FERRY" optimize "$MODELS/cnn.onnx" -o "$WORK/x.onnx" \
        --int8 static --calibration "$WORK/c4d.npy" --accuracy-budget 0.2
    check "input: missing calibration file" expect_rc 2 "$FERRY" optimize "$MODELS/cnn.onnx" -o "$WORK/x.onnx" \
        --int8 static --calibration "$WORK/nope.npy" --bench-runs 0
    for m in cnn-static cnn-percentile cnn-entropy cnn-reduce; do
        check "$m: file <= 0.3x" json "$WORK/$m.json" 'r.size.file_ratio <= 0.3'
        check "$m: accuracy drop <= 0.5 points" json "$WORK/$m.json" \
            'r.accuracy.accuracy_before - r.accuracy.accuracy_after <= 0.005 && r.accuracy.top1_agreement >= 0.98'
        check "$m: every layer int8, SQNR > 25 dB" json "$WORK/$m.json" \
            'r.int8.layers.length == 4 && r.int8.layers.every(l => l.quantized && l.sqnr_db > 25)'
    done
    check "cnn-reduce: 7-bit, per tensor" json "$WORK/cnn-reduce.json" 'r.int8.reduce_range && !r.int8.per_channel'
    check "cnn-keep: /0/Conv stays float" json "$WORK/cnn-keep.json" \
        'r.int8.layers.filter(l => !l.quantized).map(l => l.node).join() == "/0/Conv"'
    for m in mlp-static mlp-dynamic; do
        check "$m: file <= 0.3x" json "$WORK/$m.json" 'r.size.file_ratio <= 0.3'
        check "$m: accuracy drop <= 0.5 points" json "$WORK/$m.json" \
            'r.accuracy.accuracy_before - r.accuracy.accuracy_after <= 0.005'
    done
    check "mlp-dynamic: MatMulInteger written" bash -c "'$FERRY' inspect '$WORK/mlp-dynamic.onnx' | grep -q MatMulInteger"
    check "cnn-static: QDQ written" bash -c "'$FERRY' inspect '$WORK/cnn-static.onnx' | grep -q DequantizeLinear"
    # the search: a lossy calibration (99th percentile clips real activations) and a zero budget
    # make it rank every layer and fall back the harmful ones until int8 matches float
    check "search: runs" "$FERRY" optimize "$MODELS/cnn.onnx" -o "$WORK/cnn-search.onnx" --int8 static \
        --calibration "$WORK/c4d.npy" --calibrate percentile --percentile 99 --eval "$WORK/x4d.npy" \
        --labels "$WORK/y.npy" --eval-limit 2000 --accuracy-budget 0 --bench-runs 0 \
        --report "$WORK/cnn-search.json"
    check "search: met by named fallbacks, each with its reason" json "$WORK/cnn-search.json" \
        'r.int8.search.met && r.int8.search.trials.length > 4 &&
         r.int8.layers.some(l => !l.quantized) && r.int8.layers.some(l => l.quantized) &&
         r.int8.layers.filter(l => !l.quantized).every(l => /accuracy-aware/.test(l.why)) &&
         r.accuracy.accuracy_after >= r.accuracy.accuracy_before'
else
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
        name=$1 x=$3
        mkdir -p "$WORK/out-$name"
        check "ferry runs $name" "$FERRY" run "$WORK/$name.onnx" --input "$WORK/$x.npy" --output-dir "$WORK/out-$name"
        node "$SRC/tests/optimize/ort_check.js" "$WORK/$name.onnx" "$WORK/$x.npy" "$WORK/out-$name/logits.npy" \
            --rtol 0.05 --min-agreement 0.995 > "$WORK/ort.log" 2>&1
        rc=$?
        [ $rc -eq $SKIP ] && { echo "onnxruntime-node is not installed: skipping"; exit $SKIP; }
        if [ $rc -eq 0 ]; then echo "ok   onnxruntime runs $name like ferry: $(cat "$WORK/ort.log")"
        else echo "FAIL onnxruntime runs $name like ferry"; sed 's/^/     /' "$WORK/ort.log"; fail=$((fail + 1)); fi
    done
fi

[ $fail -eq 0 ] || { echo "$fail check(s) failed"; exit 1; }
echo "all int8 checks passed"
