-- wrk script for bench/dashboard_load.py: GETs the paths in DASHBOARD_PATHS (comma-separated) in turn with the
-- session cookie in DASHBOARD_COOKIE; counts answers other than 200 and prints the figures as one JSON line.
local paths = {}
for path in string.gmatch(os.getenv("DASHBOARD_PATHS") or "/", "[^,]+") do table.insert(paths, path) end
local cookie = os.getenv("DASHBOARD_COOKIE") or ""
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  counter = math.random(#paths)
  not_ok = 0
end

request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1], { ["Cookie"] = cookie })
end

response = function(status, headers, body)
  if status ~= 200 then not_ok = not_ok + 1 end
end

done = function(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("not_ok") end
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "not_200": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, bad,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
