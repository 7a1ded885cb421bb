-- wrk script for benchmarks/bench_api.py: a fixed request rate per connection, and a JSON line
-- of the run's figures at the end.
--
-- wrk sends a connection's next request only when its answer has come, after delay() ms. Each
-- thread keeps a schedule of due times WB_THREADS * 1000 / WB_RATE ms apart (from a monotonic
-- clock, read through LuaJIT's ffi: plain Lua has no millisecond clock), and delay() gives the
-- connection whose answer just came the next due time, so the thread offers WB_RATE / WB_THREADS
-- requests/s whatever the latency, as long as it has a free connection when one is due (when it
-- has none the server is behind and the request goes as soon as a connection frees;
-- bench_api.py prints the rate achieved beside the one offered).
--
-- GET: the URL's path as given. POST (WB_POST_TEMPLATE set): a JSON list of WB_POST_ROWS rows,
-- each the template row with "__ID__" replaced by a fresh opportunity id (WB_NONCE, the thread,
-- a counter), so every posted row is new to the store, and "__TS__" by its detection time: the
-- wall clock in ns, made to rise by at least 1 ns a row within a thread, as a detector's rows
-- carry their own increasing times (seconds and ns apart: a Lua number holds only 53 bits). The
-- template is cut at its placeholders once, and a request's body is one concatenation of the
-- pieces: wrk shares the server's cores, so what it spends per request is taken from the server.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } wb_timespec;
int clock_gettime(int clk_id, wb_timespec *tp);
]]
local CLOCK_REALTIME = 0
local CLOCK_MONOTONIC = 1
local ts = ffi.new("wb_timespec")
local function now_ms()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
   return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local last_sec, last_nsec = 0, 0
local function detected_ns()
   ffi.C.clock_gettime(CLOCK_REALTIME, ts)
   local sec, nsec = tonumber(ts.tv_sec), tonumber(ts.tv_nsec)
   if sec < last_sec or (sec == last_sec and nsec <= last_nsec) then
      sec, nsec = last_sec, last_nsec + 1
      if nsec >= 1000000000 then
         sec, nsec = sec + 1, 0
      end
   end
   last_sec, last_nsec = sec, nsec
   return string.format("%d%09d", sec, nsec)
end

local spacing_ms = tonumber(os.getenv("WB_THREADS") or "1") * 1000 / tonumber(os.getenv("WB_RATE") or "100")
local template_path = os.getenv("WB_POST_TEMPLATE")
local post_rows = tonumber(os.getenv("WB_POST_ROWS") or "10")
local nonce = tonumber(os.getenv("WB_NONCE") or "1")

local threads = {}
local next_tid = 0

function setup(thread)
   next_tid = next_tid + 1
   thread:set("tid", next_tid)
   table.insert(threads, thread)
end

local template = nil         -- the template row cut at its placeholders: text, and "__ID__" / "__TS__"
local counter = 0

local function cut(text)
   local pieces, at = {}, 1
   while true do
      local i, j, name = string.find(text, "(__[IT][DS]__)", at)
      if i == nil then
         table.insert(pieces, string.sub(text, at))
         return pieces
      end
      table.insert(pieces, string.sub(text, at, i - 1))
      table.insert(pieces, name)
      at = j + 1
   end
end

function init(args)
   if template_path ~= nil and template_path ~= "" then
      local f = assert(io.open(template_path, "r"))
      template = cut(f:read("*a"))
      f:close()
   end
end

local due = nil

function delay()
   local now = now_ms()
   if due == nil then
      due = now
   end
   due = due + spacing_ms
   if due < now then            -- behind the schedule: no wait (and no burst to catch up later)
      due = now
      return 0
   end
   return math.floor(due - now)
end

function request()
   if template == nil then
      return wrk.format("GET", wrk.path)
   end
   local buf, n = {"["}, 1
   for i = 1, post_rows do
      counter = counter + 1
      if i > 1 then
         n = n + 1
         buf[n] = ","
      end
      for _, piece in ipairs(template) do
         n = n + 1
         if piece == "__ID__" then
            buf[n] = string.format("%08x-%04x-4000-8000-%012x", nonce, tid, counter)
         elseif piece == "__TS__" then
            buf[n] = detected_ns()
         else
            buf[n] = piece
         end
      end
   end
   buf[n + 1] = "]"
   return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"}, table.concat(buf))
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
      '"status_errors":%d,"timeouts":%d,"p50_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"max_us":%.1f}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
