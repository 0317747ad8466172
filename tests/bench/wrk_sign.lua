-- wrk script for tests/bench/run_bench.py: POSTs certificate requests to
-- cfssl serve's /api/v1/cfssl/sign, cycling through the JSON bodies of a
-- file (one per line) given after "--", and prints one "result" line in
-- bench-issue's format when the run ends.
--
--   wrk -t T -c C -d S -s wrk_sign.lua http://127.0.0.1:PORT -- BODIES
local bodies = {}
local i = 0

function init(args)
  local f = assert(io.open(args[1], "r"))
  for line in f:lines() do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  f:close()
  assert(#bodies > 0, "no request bodies in " .. args[1])
  -- Threads start at different bodies, as bench-issue's threads use
  -- different devices.
  i = math.random(#bodies) - 1
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", "/api/v1/cfssl/sign",
                    { ["Content-Type"] = "application/json" }, bodies[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.status + e.timeout
  local secs = summary.duration / 1e6
  io.write(string.format(
    "result mode=cfssl transport=http seconds=%.3f calls=%d" ..
    " errors=%d rate=%.1f p50_us=%d p99_us=%d max_us=%d\n",
    secs, summary.requests, errors,
    summary.requests / secs, latency:percentile(50), latency:percentile(99),
    latency.max))
end
