-- wrk script for scripts/bench_serve.sh: POSTs single-sentence OpenAI embedding requests,
-- one corpus line per request (each connection walks the corpus from its own offset), and
-- prints one JSON line with throughput, latency percentiles and the count of each status.
--
-- Environment: CORPUS (one text per line), MODEL_NAME (the request's "model").

local threads = {}

local function json_string(text)
  local escaped = text:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == '\\' then return '\\\\' end
    return string.format('\\u%04x', c:byte())
  end)
  return '"' .. escaped .. '"'
end

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  local model = os.getenv("MODEL_NAME") or "kiln"
  for line in io.lines(os.getenv("CORPUS")) do
    table.insert(bodies, '{"input": ' .. json_string(line) .. ', "model": ' .. json_string(model) .. '}')
  end
  assert(#bodies > 0, "CORPUS has no lines")
  -- Threads start at different places so that concurrent requests carry different texts.
  next_body = (id * 7919) % #bodies
  statuses = {}
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[tostring(status)] = (counts[tostring(status)] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%s": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "requests_per_s": %.1f, "p50_ms": %.2f, "p90_ms": %.2f, ' ..
    '"p99_ms": %.2f, "max_ms": %.2f, "statuses": {%s}, "socket_errors": %d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, table.concat(parts, ", "),
    e.connect + e.read + e.write + e.timeout))
end
