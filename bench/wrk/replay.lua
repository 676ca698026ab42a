-- wrk script of the benchmark suite (bench/http.py): replays the requests of a file.
--
--   wrk ... -s bench/wrk/replay.lua http://127.0.0.1:PORT -- REQUESTS_FILE THREADS
--
-- Each line of REQUESTS_FILE is one request, tab-separated:
--   METHOD  HOST  PATH  COOKIE  CSRF_TOKEN  BODY
-- (COOKIE, CSRF_TOKEN and BODY may be empty). Thread n of THREADS takes lines
-- n, n + THREADS, ... and sends them round robin, so every connection carries its
-- own sessions. done() prints one line "BENCH {json}" with the counts, the latency
-- percentiles (p95 included, which wrk's own report lacks) and the status codes.

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   local file, nthreads = args[1], tonumber(args[2])
   requests, statuses, index = {}, {}, 0
   local line_number = 0
   for line in io.lines(file) do
      if line_number % nthreads == id then
         local method, host, path, cookie, csrf, body =
            line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
         local headers = { Host = host }
         if cookie ~= "" then headers["Cookie"] = cookie end
         if csrf ~= "" then headers["X-CSRFToken"] = csrf end
         if body ~= "" then headers["Content-Type"] = "application/x-www-form-urlencoded" else body = nil end
         table.insert(requests, wrk.format(method, path, headers, body))
      end
      line_number = line_number + 1
   end
   if #requests == 0 then
      error("no request for thread " .. id .. " in " .. file)
   end
end

function request()
   index = index % #requests + 1
   return requests[index]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local counts = {}
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(counts) do
      table.insert(parts, string.format('"%d": %d', status, n))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "bytes": %d, "p50_us": %d, "p90_us": %d, "p95_us": %d, '
         .. '"p99_us": %d, "max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
         .. '"statuses": {%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99), latency.max,
      e.connect, e.read, e.write, e.timeout, table.concat(parts, ", ")))
end
