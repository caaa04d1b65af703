-- post.lua — wrk script for ferry serve: POSTs one KServe v2 inference request per call.
-- By default the body is a v2 JSON request for the Fashion-MNIST MLP: one [1,784] FP32 input of
-- 784 floats (a deterministic pattern in [0,1]). BODY_FILE=path sends that file's bytes
-- instead; IHCL=n adds Inference-Header-Content-Length: n (the binary tensor extension).
-- done() prints one JSON line the runner (bench/serve/run.py) parses.
local body_file = os.getenv("BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
else
  local vals = {}
  for i = 1, 784 do
    vals[i] = string.format("%.4f", ((i * 7919) % 1000) / 1000)
  end
  wrk.body = '{"inputs":[{"name":"input","shape":[1,784],"datatype":"FP32","data":['
    .. table.concat(vals, ",") .. ']}]}'
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local ihcl = os.getenv("IHCL")
if ihcl and ihcl ~= "" then
  wrk.headers["Inference-Header-Content-Length"] = ihcl
  wrk.headers["Content-Type"] = "application/octet-stream"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
