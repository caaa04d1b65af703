#!/usr/bin/env node
// idx_to_npy.js — test fixture: the first N images (scaled to 0..1, float32) and labels of an
// MNIST-style IDX pair (gz ok) as .npy files, shaped [N,784] or [N,1,28,28] (--shape4d).
// usage: node idx_to_npy.js IMAGES.gz LABELS.gz N OUT_IMAGES.npy OUT_LABELS.npy [--shape4d]
'use strict';
const fs = require('fs');
const zlib = require('zlib');

function readIdx(file) {
  let buf = fs.readFileSync(file);
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = zlib.gunzipSync(buf);
  const ndim = buf[3];
  const dims = [];
  for (let i = 0; i < ndim; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  return {dims, data: buf.subarray(4 + 4 * ndim)};
}

function npy(shape, descr, bytes) {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), bytes]);
}

const [imgs, labs, nStr, outX, outY, flag] = process.argv.slice(2);
if (!outY) {
  process.stderr.write('usage: node idx_to_npy.js IMAGES.gz LABELS.gz N OUT_IMAGES.npy OUT_LABELS.npy [--shape4d]\n');
  process.exit(2);
}
const im = readIdx(imgs), lb = readIdx(labs);
const n = Math.min(Number(nStr), im.dims[0]);
const per = im.dims.slice(1).reduce((a, b) => a * b, 1);
const x = new Float32Array(n * per);
for (let i = 0; i < n * per; i++) x[i] = im.data[i] / 255;
const y = new BigInt64Array(n);
for (let i = 0; i < n; i++) y[i] = BigInt(lb.data[i]);
const shape = flag === '--shape4d' ? [n, 1, im.dims[1], im.dims[2]] : [n, per];
fs.writeFileSync(outX, npy(shape, '<f4', Buffer.from(x.buffer)));
fs.writeFileSync(outY, npy([n], '<i8', Buffer.from(y.buffer)));
