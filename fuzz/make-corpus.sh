#!/usr/bin/env bash
# make-corpus.sh OUT_DIR — seeds the loader fuzzer with real models: the ONNX backend test
# models (Debian's libonnx-testdata) and the models bundled in examples/.
set -eu
out=$1
mkdir -p "$out"
i=0
for m in /usr/share/libonnx-testdata/data/*/*/model.onnx examples/*/*.onnx; do
  [ -f "$m" ] || continue
  [ "$(stat -c %s "$m")" -le 200000 ] || continue   # small models fuzz faster
  cp "$m" "$out/seed-$i.onnx"
  i=$((i + 1))
done
echo "seeded $i models into $out"
