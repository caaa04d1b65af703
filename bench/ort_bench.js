#!/usr/bin/env node
// ort_bench.js — times one model with ONNX Runtime (onnxruntime-node from bench/.deps) the way
// `ferry bench --json` times it with ferry, and prints one JSON line with the same keys.
//
// usage: node bench/ort_bench.js MODEL --shape D0,D1,... [--iterations N] [--warmup N]
//                                [--threads N] [--seed S]
// The model's first input gets float32 data uniform in [-1,1] of the given shape (every model
// bench/run.py times has one float input). Session: intraOpNumThreads = --threads (default 2),
// interOpNumThreads 1, graphOptimizationLevel 'all'. Exit 0 ok, 2 bad usage, 3 ORT failed.
'use strict';
const path = require('path');

function usage(msg) {
  if (msg) process.stderr.write(`ort_bench.js: ${msg}\n`);
  process.stderr.write('usage: node bench/ort_bench.js MODEL --shape D0,D1,... [--iterations N] ' +
                       '[--warmup N] [--threads N] [--seed S]\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = {model: null, shape: null, iterations: 100, warmup: 5, threads: 2, seed: 1};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = argv[i + 1];
    const int = (min) => {
      if (v === undefined || !/^[0-9]+$/.test(v) || Number(v) < min)
        usage(`${a} needs an integer >= ${min}`);
      i++;
      return Number(v);
    };
    if (a === '-h' || a === '--help') usage();
    else if (a === '--shape') {
      if (v === undefined || !/^[0-9]+(,[0-9]+)*$/.test(v)) usage('--shape needs D0,D1,...');
      o.shape = v.split(',').map(Number);
      i++;
    } else if (a === '--iterations') o.iterations = int(1);
    else if (a === '--warmup') o.warmup = int(0);
    else if (a === '--threads') o.threads = int(1);
    else if (a === '--seed') o.seed = int(0);
    else if (a.startsWith('-') || o.model) usage(`unexpected argument "${a}"`);
    else o.model = a;
  }
  if (!o.model || !o.shape) usage('MODEL and --shape are required');
  return o;
}

// mulberry32: small, seeded, good enough for benchmark inputs.
function random(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ms = (a, b) => Number(b - a) / 1e6;

function percentile(sorted, p) { // nearest rank, as ferry bench does
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[k];
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ort = require(path.join(__dirname, '.deps', 'node_modules', 'onnxruntime-node'));
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(o.model, {
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const t1 = process.hrtime.bigint();

  const count = o.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  const rand = random(o.seed);
  for (let i = 0; i < count; i++) data[i] = rand() * 2 - 1;
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, o.shape)};

  const t2 = process.hrtime.bigint();
  await session.run(feeds);
  const firstRun = ms(t2, process.hrtime.bigint());
  for (let i = 0; i < o.warmup; i++) await session.run(feeds);
  const times = new Array(o.iterations);
  for (let i = 0; i < o.iterations; i++) {
    const a = process.hrtime.bigint();
    await session.run(feeds);
    times[i] = ms(a, process.hrtime.bigint());
  }
  const peakRss = process.resourceUsage().maxRSS / 1024; // KiB -> MiB
  times.sort((a, b) => a - b);
  const n = times.length;
  const median = n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  const batch = o.shape.length ? o.shape[0] : 1;
  const result = {
    runtime: `onnxruntime-node ${ort.env.versions ? ort.env.versions.node : '?'}`,
    model: o.model,
    load_ms: ms(t0, t1),
    first_run_ms: firstRun,
    min_ms: times[0],
    median_ms: median,
    p90_ms: percentile(times, 0.90),
    p99_ms: percentile(times, 0.99),
    mean_ms: times.reduce((a, b) => a + b, 0) / n,
    throughput_per_s: median > 0 ? batch * 1e3 / median : 0,
    peak_rss_mb: peakRss,
    iterations: n,
    warmup: o.warmup,
    batch,
    threads: o.threads,
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  await session.release();
}

main().catch((e) => {
  process.stderr.write(`ort_bench.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(3);
});
