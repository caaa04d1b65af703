#!/usr/bin/env node
// ort_check.js — runs an ONNX model in ONNX Runtime (onnxruntime-node) and compares its first
// output with what ferry computed, so every model `ferry optimize` writes is checked to be
// standard ONNX that another runtime executes with the same answers.
//
// usage: node ort_check.js MODEL INPUT.npy FERRY_OUTPUT.npy [--rtol X] [--min-agreement F]
// INPUT feeds the model's first input; FERRY_OUTPUT is ferry's output 0 for the same input.
// Prints one JSON line {max_rel_error, top1_agreement, rows}. The error is max|a-b| / max|a|.
// onnxruntime-node is looked up in $FERRY_ORT_MODULES, then bench/.deps/node_modules, then the
// normal require path. Exit 0 ok, 1 mismatch, 2 bad usage, 3 ORT failed, 77 ORT not installed.
'use strict';
const fs = require('fs');
const path = require('path');

function usage(msg) {
  process.stderr.write(`ort_check.js: ${msg}\nusage: node ort_check.js MODEL INPUT.npy ` +
                       'FERRY_OUTPUT.npy [--rtol X] [--min-agreement F]\n');
  process.exit(2);
}

function loadOrt() {
  const tries = [];
  if (process.env.FERRY_ORT_MODULES) tries.push(path.join(process.env.FERRY_ORT_MODULES, 'onnxruntime-node'));
  tries.push(path.join(__dirname, '..', '..', 'bench', '.deps', 'node_modules', 'onnxruntime-node'));
  tries.push('onnxruntime-node');
  for (const t of tries) {
    try { return require(t); } catch (e) { /* next */ }
  }
  process.stderr.write('ort_check.js: onnxruntime-node is not installed (skipping)\n');
  process.exit(77);
}

// Minimal .npy reader: little-endian float32/float64/int64/uint8, C order.
function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.readUInt32BE(0) !== 0x934e554d) throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major >= 2 ? buf.readUInt32LE(8) : buf.readUInt16LE(8);
  const start = major >= 2 ? 12 : 10;
  const header = buf.toString('latin1', start, start + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim())
      .filter(s => s.length).map(Number);
  const off = start + hlen;
  const bytes = buf.buffer.slice(buf.byteOffset + off, buf.byteOffset + buf.length);
  const types = {'<f4': Float32Array, '<f8': Float64Array, '<i8': BigInt64Array, '|u1': Uint8Array};
  if (!types[descr]) throw new Error(`${file}: dtype ${descr} not supported`);
  const data = new types[descr](bytes.slice(0));
  return {shape, data, type: descr === '<f4' ? 'float32' : descr === '<f8' ? 'float64' :
                             descr === '<i8' ? 'int64' : 'uint8'};
}

async function main() {
  const argv = process.argv.slice(2);
  const pos = [];
  let rtol = 1e-4, minAgree = 1.0;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--rtol') rtol = Number(argv[++i]);
    else if (argv[i] === '--min-agreement') minAgree = Number(argv[++i]);
    else if (argv[i].startsWith('-')) usage(`unknown option ${argv[i]}`);
    else pos.push(argv[i]);
  }
  if (pos.length !== 3 || !(rtol >= 0) || !(minAgree >= 0)) usage('MODEL, INPUT and FERRY_OUTPUT are required');
  const ort = loadOrt();
  let x, ref;
  try {
    x = readNpy(pos[1]);
    ref = readNpy(pos[2]);
  } catch (e) { usage(e.message); }
  let out;
  try {
    const sess = await ort.InferenceSession.create(pos[0], {graphOptimizationLevel: 'disabled',
                                                             intraOpNumThreads: 1});
    const feeds = {[sess.inputNames[0]]: new ort.Tensor(x.type, x.data, x.shape)};
    const res = await sess.run(feeds);
    out = res[sess.outputNames[0]];
  } catch (e) {
    process.stderr.write(`ort_check.js: ONNX Runtime failed on ${pos[0]}: ${e.message}\n`);
    process.exit(3);
  }
  const a = ref.data, b = out.data;
  if (a.length !== b.length) {
    process.stderr.write(`ort_check.js: ${a.length} values from ferry, ${b.length} from ONNX Runtime\n`);
    process.exit(1);
  }
  let scale = 0, diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(Number(a[i])));
    diff = Math.max(diff, Math.abs(Number(a[i]) - Number(b[i])));
    if (Number.isNaN(Number(b[i])) !== Number.isNaN(Number(a[i]))) diff = Infinity;
  }
  const rel = diff / Math.max(scale, 1e-12);
  const cols = ref.shape.length === 2 ? ref.shape[1] : a.length;
  const rows = a.length / cols;
  let agree = 0;
  const argmax = (d, r) => {
    let best = 0;
    for (let c = 1; c < cols; c++) if (Number(d[r * cols + c]) > Number(d[r * cols + best])) best = c;
    return best;
  };
  for (let r = 0; r < rows; r++) agree += argmax(a, r) === argmax(b, r) ? 1 : 0;
  const result = {model: pos[0], max_rel_error: rel, top1_agreement: agree / rows, rows};
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(rel <= rtol && agree / rows >= minAgree ? 0 : 1);
}

main();
