-- replay.lua for large responses (bench/scenarios/s13_attachment.py): the same requests, no response().
--
--   wrk ... -s bench/wrk/stream.lua http://127.0.0.1:PORT -- REQUESTS_FILE THREADS
--
-- When a script defines response(), wrk gathers every body into one Lua string to pass it:
-- for a 10 MB download that copying, not the server, sets the pace. Without it, wrk reads
-- and counts the bytes only, so the status codes are not seen one by one: the line
-- "BENCH_STATUS n" gives wrk's count of responses that were not 2xx or 3xx.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "replay.lua")
response = nil

local replay_done = done
function done(summary, latency, requests)
   io.write(string.format("BENCH_STATUS %d\n", summary.errors.status))
   replay_done(summary, latency, requests)
end
