-- wrk script for every benchmarked endpoint; the mode comes from the environment.
--
--   BENCH_MODE   bare | drf | learner | activities | update | write_then_read | course_page |
--                analytics | bulk
--                write_then_read: every POST answered 2xx is followed by a GET of that learner's
--                3.1 on the POST course (the read a client makes right after its write, always a
--                cache miss); "answered" counts the reads (pairs), and pair latencies (POST sent
--                -> its read answered) are reported as "pair_latency_us"
--   BENCH_DATA   the data file written by `python -m bench.prepare` (tokens, ids)
--   BENCH_PICK   random: requests drawn at random from the key set (cached reads, mostly)
--                walk:   each key once, in a shuffled order, then the thread stops (cold reads)
--   BENCH_KEYS   how many keys (user/course pairs, pages, ...) to draw from; 0 = all of them
--   BENCH_SEED   seeds the shuffles, so that every round walks a different order
--   BENCH_OUT    update modes: where to write the accepted (user, content, progressId) triples
--   BENCH_PATH   ceiling rows (bench/urls.py): the learner, analytics and update modes'
--                requests go to this path instead, "{course}" and "{learner}" replaced by the
--                ids the mode drew
--
-- done() prints one line "BENCH_RESULT {json}" that bench.load parses.

local mode = os.getenv("BENCH_MODE") or "bare"
local pick = os.getenv("BENCH_PICK") or "random"
local nkeys = tonumber(os.getenv("BENCH_KEYS") or "0")
local seed = tonumber(os.getenv("BENCH_SEED") or "1")
local out_path = os.getenv("BENCH_OUT")
local bench_path = os.getenv("BENCH_PATH")

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local timespec = ffi.new("bench_timespec")
local function now_us()
   ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
   return tonumber(timespec.tv_sec) * 1000000 + tonumber(timespec.tv_nsec) / 1000
end

local threads = {}
local counter = 0

function setup(thread)
   thread:set("tid", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

-- Per-thread state (each wrk thread has its own Lua state).
local data = { owner = nil, courses = {}, learners = {}, by_id = {}, post_course = nil, post_contents = {}, pages = 1 }
local keys = {}
local position = 0
local stopped = false
non2xx = 0
sent = 0
accepted = {}   -- update mode: "user:content" -> progressId
conflicts = 0   -- update mode: one pair answered with two different progressIds
unparsed = 0
-- walk mode: wrk's own duration is the full -d even when the walk ends early, so the rate is
-- taken between this thread's first request and its last response instead.
first_us = 0
last_us = 0
answered = 0
-- write_then_read mode
writes = 0          -- POSTs sent (they pick the (learner, item, step) as the update mode does)
pending = {}        -- learners whose POST was answered, waiting for their read: {uid, t0}
pending_head = 1
pending_tail = 0
inflight_reads = {} -- uid -> list of t0 (POST sent) of the reads sent for it
write_t0 = {}       -- "uid:content" -> times the POSTs in flight for it were sent, oldest first
pair_us = {}        -- pair latencies: POST sent -> its read answered

local function load_data()
   local path = os.getenv("BENCH_DATA")
   local f = assert(io.open(path, "r"), "cannot open BENCH_DATA " .. tostring(path))
   for line in f:lines() do
      local kind, a, b = line:match("^(%S+)%s*(%S*)%s*(%S*)")
      if kind == "owner" then data.owner = a
      elseif kind == "course" then table.insert(data.courses, tonumber(a))
      elseif kind == "learner" then
         local learner = { id = tonumber(a), token = b }
         table.insert(data.learners, learner)
         data.by_id[a] = learner
      elseif kind == "post_course" then data.post_course = tonumber(a)
      elseif kind == "post_content" then table.insert(data.post_contents, tonumber(a))
      elseif kind == "pages" then data.pages = tonumber(a)
      end
   end
   f:close()
end

local function shuffle(list, rng_seed)
   math.randomseed(rng_seed)
   for i = #list, 2, -1 do
      local j = math.random(i)
      list[i], list[j] = list[j], list[i]
   end
end

local SORTS = { "enrollmentDate", "progress", "completionDate" }
local ORDERS = { "asc", "desc" }

-- The key space of each mode: every request the mode can make, as a small table.
local function build_keys()
   local all = {}
   if mode == "learner" or mode == "activities" or mode == "drf" then
      for _, c in ipairs(data.courses) do
         for li = 1, #data.learners do table.insert(all, { c = c, l = li }) end
      end
   elseif mode == "course_page" then
      for _, c in ipairs(data.courses) do
         for p = 1, data.pages do
            for s = 1, #SORTS do
               for o = 1, #ORDERS do table.insert(all, { c = c, p = p, s = s, o = o }) end
            end
         end
      end
   elseif mode == "analytics" or mode == "bulk" then
      for _, c in ipairs(data.courses) do table.insert(all, { c = c }) end
   else
      all = { {} }
   end
   -- The same shuffled key set in every thread (the seed is shared) ...
   shuffle(all, seed)
   if nkeys > 0 and nkeys < #all then
      for i = #all, nkeys + 1, -1 do all[i] = nil end
   end
   if pick == "walk" then
      -- ... and in walk mode each thread takes every n-th key, so the threads walk disjoint keys.
      local mine = {}
      for i = tid + 1, #all, #threads_total do table.insert(mine, all[i]) end
      return mine
   end
   return all
end

function init(args)
   load_data()
   threads_total = {}
   for i = 1, tonumber(os.getenv("BENCH_THREADS") or "1") do threads_total[i] = i end
   keys = build_keys()
   math.randomseed(seed * 1000 + tid)
end

local function auth(token)
   return { ["Authorization"] = "Token " .. token, ["Accept"] = "application/json" }
end

local function next_key()
   if pick == "walk" then
      position = position + 1
      if position > #keys then
         if not stopped then
            stopped = true
            wrk.thread:stop()
         end
         position = 1
      end
      return keys[position]
   end
   return keys[math.random(#keys)]
end

-- update mode: request n of this thread works on pair (n div 3), in three steps, so that the
-- same row is created and then updated by requests in flight at the same time.
local STEPS = {
   { status = "IN_PROGRESS", percent = 40, minutes = 5 },
   { status = "IN_PROGRESS", percent = 80, minutes = 10 },
   { status = "COMPLETED", percent = nil, minutes = 15 },
}

local function update_request(n)
   local pair = math.floor(n / 3) * #threads_total + tid
   local nl, nc = #data.learners, #data.post_contents
   local learner = data.learners[(pair % nl) + 1]
   local content = data.post_contents[(math.floor(pair / nl) % nc) + 1]
   local step = STEPS[(n % 3) + 1]
   local body = string.format(
      '{"courseId": %d, "courseContentId": %d, "progressStatus": "%s", "activityDuration": %d%s}',
      data.post_course, content, step.status, step.minutes,
      step.percent and string.format(', "progressPercent": %d', step.percent) or "")
   local headers = auth(learner.token)
   headers["Content-Type"] = "application/json"
   if mode == "write_then_read" then
      local key = learner.id .. ":" .. content
      local list = write_t0[key] or {}
      table.insert(list, now_us())
      write_t0[key] = list
   end
   return wrk.format("POST", bench_path or "/user-progress/update", headers, body)
end

local function write_then_read_request()
   if pending_head <= pending_tail then
      local item = pending[pending_head]
      pending[pending_head] = nil
      pending_head = pending_head + 1
      local list = inflight_reads[item.uid] or {}
      table.insert(list, item.t0)
      inflight_reads[item.uid] = list
      local learner = data.by_id[item.uid]
      local path = string.format("/user-progress/%d/%s", data.post_course, item.uid)
      return wrk.format("GET", path, auth(learner.token))
   end
   writes = writes + 1
   return update_request(writes)
end

function request()
   sent = sent + 1
   if first_us == 0 then first_us = now_us() end
   if mode == "bare" then
      return wrk.format("GET", "/bench/bare", { ["Accept"] = "application/json" })
   elseif mode == "update" then
      return update_request(sent)
   elseif mode == "write_then_read" then
      return write_then_read_request()
   end
   local k = next_key()
   if mode == "drf" then
      return wrk.format("GET", "/bench/drf", auth(data.learners[k.l].token))
   elseif mode == "learner" or mode == "activities" then
      local learner = data.learners[k.l]
      local path = string.format("/user-progress/%d/%d", k.c, learner.id)
      if mode == "activities" then path = path .. "/activities" end
      if bench_path then
         path = bench_path:gsub("{course}", tostring(k.c)):gsub("{learner}", tostring(learner.id))
      end
      return wrk.format("GET", path, auth(learner.token))
   elseif mode == "course_page" then
      local path = string.format("/user-progress/course/%d/all?page=%d&sortBy=%s&order=%s",
         k.c, k.p, SORTS[k.s], ORDERS[k.o])
      return wrk.format("GET", path, auth(data.owner))
   elseif mode == "analytics" then
      local path = string.format("/user-progress/course/%d/analytics", k.c)
      if bench_path then path = bench_path:gsub("{course}", tostring(k.c)) end
      return wrk.format("GET", path, auth(data.owner))
   elseif mode == "bulk" then
      local ids = {}
      local start = math.random(#data.learners)
      for i = 0, 19 do
         table.insert(ids, data.learners[((start + i) % #data.learners) + 1].id)
      end
      local headers = auth(data.owner)
      headers["Content-Type"] = "application/json"
      local body = string.format('{"courseId": %d, "userIds": [%s]}', k.c, table.concat(ids, ","))
      return wrk.format("POST", "/user-progress/bulk", headers, body)
   end
end

local function on_update(status, body)
   local pid = body:match('"progressId":%s*(%d+)')
   local uid = body:match('"userId":%s*(%d+)')
   local cid = body:match('"courseContentId":%s*(%d+)')
   if not (pid and uid and cid) then
      unparsed = unparsed + 1
      return nil
   end
   local key = uid .. ":" .. cid
   local seen = accepted[key]
   if seen and seen ~= pid then conflicts = conflicts + 1 end
   accepted[key] = pid
   return uid, cid
end

-- write_then_read: a read's body holds "activityLogs"; anything else answered 2xx is a POST.
local function on_write_then_read(status, body, t)
   if body:find('"activityLogs"', 1, true) then
      answered = answered + 1
      local uid = body:match('"userId":%s*(%d+)')
      local list = uid and inflight_reads[uid]
      if list and #list > 0 then
         local t0 = table.remove(list, 1)
         table.insert(pair_us, t - t0)
      end
      return
   end
   local uid, cid = on_update(status, body)
   if uid then
      local list = write_t0[uid .. ":" .. cid]
      local t0 = (list and #list > 0) and table.remove(list, 1) or t
      pending_tail = pending_tail + 1
      pending[pending_tail] = { uid = uid, t0 = t0 }
   end
end

function response(status, headers, body)
   local t = now_us()
   last_us = t
   if mode ~= "write_then_read" then answered = answered + 1 end
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
   elseif mode == "update" then
      on_update(status, body)
   elseif mode == "write_then_read" then
      on_write_then_read(status, body, t)
   end
end

if mode ~= "update" and mode ~= "write_then_read" and pick ~= "walk" then
   -- Without a response() hook wrk does not hand each body to Lua: cheaper for big bodies.
   -- Non-2xx answers are then counted from wrk's own summary (status > 399).
   response = nil
end

local function json_escape(s)
   return (tostring(s):gsub('[%c"\\]', function(ch) return string.format("\\u%04x", ch:byte()) end))
end

function done(summary, latency, requests)
   local n2xx, nsent, nconf, nunparsed = 0, 0, 0, 0
   local pairs_out = nil
   if out_path and (mode == "update" or mode == "write_then_read") then
      pairs_out = assert(io.open(out_path, "w"))
   end
   local all_pairs = {}
   local triples = 0
   local first, last, nanswered = nil, 0, 0
   for _, t in ipairs(threads) do
      local f, l = t:get("first_us") or 0, t:get("last_us") or 0
      if f > 0 and (first == nil or f < first) then first = f end
      if l > last then last = l end
      nanswered = nanswered + (t:get("answered") or 0)
      n2xx = n2xx + (t:get("non2xx") or 0)
      nsent = nsent + (t:get("sent") or 0)
      nconf = nconf + (t:get("conflicts") or 0)
      nunparsed = nunparsed + (t:get("unparsed") or 0)
      for _, us in ipairs(t:get("pair_us") or {}) do table.insert(all_pairs, us) end
      if pairs_out then
         for key, pid in pairs(t:get("accepted") or {}) do
            local u, c = key:match("(%d+):(%d+)")
            pairs_out:write(u, " ", c, " ", pid, "\n")
            triples = triples + 1
         end
      end
   end
   if pairs_out then pairs_out:close() end
   table.sort(all_pairs)
   local function pct(p)
      if #all_pairs == 0 then return 0 end
      return all_pairs[math.max(1, math.ceil(p / 100 * #all_pairs))]
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"mode": "%s", "requests": %d, "duration_us": %d, "bytes": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"answered": %d, "window_us": %d, "non2xx_lua": %d, "sent": %d, "conflicts": %d, "unparsed": %d, "triples": %d, '
         .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}, '
         .. '"pair_latency_us": {"count": %d, "p50": %d, "p99": %d}}\n',
      json_escape(mode), summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      nanswered, (first and last > first) and (last - first) or 0, n2xx, nsent, nconf, nunparsed, triples,
      latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, #all_pairs, pct(50), pct(99)))
end
