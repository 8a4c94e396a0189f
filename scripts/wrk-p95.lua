-- wrk script for scripts/bench-storage (WRK=1): sends the bench key and prints p50/p95/p99 in milliseconds.
wrk.headers["X-API-Key"] = "bench-key"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("wrk: %d requests, %d errors, non-2xx %d; latency ms: p50 %.2f  p95 %.2f  p99 %.2f  max %.2f\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
