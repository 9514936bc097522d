-- wrk script for bench/http.ts: `WRK_TOKENS=FILE wrk -t1 -c10 -d5s -s bench/wrk.lua URL`.
-- Without WRK_TOKENS: wrk's own static request (headers from -H), built once. With a file of
-- tokens (one a line): request N carries token N, so no token is ever sent twice; if the file runs
-- out, requests carry an invalid token (401s, counted) and `exhausted` is 1: the run is then void.
local file = os.getenv("WRK_TOKENS")
local tokens = {}
sent = 0
exhausted = 0

if file ~= nil and file ~= "" then
  function init(args)
    for line in io.lines(file) do tokens[#tokens + 1] = line end
  end
  function request()
    sent = sent + 1
    local token = tokens[sent]
    if token == nil then
      exhausted = 1
      token = "exhausted"
    end
    return wrk.format("GET", nil, { Authorization = "Bearer " .. token })
  end
end

local threads = {}
function setup(thread)
  threads[#threads + 1] = thread
end

function done(summary, latency, requests)
  local used, out = 0, 0
  for _, thread in ipairs(threads) do
    used = used + (thread:get("sent") or 0)
    out = math.max(out, thread:get("exhausted") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,"tokens_used":%d,"exhausted":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout, used, out,
    latency:percentile(99)))
end
