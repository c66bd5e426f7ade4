-- wrk script for tests/test_load.py: an owners' mix of login, gallery, photo and thumbnail
-- requests. The test writes the data this script needs to the file named by
-- PCTEST_LOAD_MIX, one request per line:  weight<TAB>method<TAB>path<TAB>cookie<TAB>body
-- A weight "/N" means every Nth request of each thread instead of a random share, for
-- requests too rare to leave to chance (logins).
-- At the end it prints wrk's error counts (status= counts answers of 400 and up) and the
-- latency percentiles, for the test to parse. Statuses are counted from the server's
-- request log instead of a response() callback here: that callback makes wrk hand every
-- body to Lua, and wrk, not the server, became the bottleneck (100 req/s instead of 1,100).

local entries, periodic, total = {}, {}, 0

local function split(line)
  local fields = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    table.insert(fields, field)
  end
  return fields
end

for line in io.lines(os.getenv("PCTEST_LOAD_MIX")) do
  local f = split(line)
  local headers = { ["Cookie"] = f[4] ~= "" and f[4] or nil }
  local body = f[5] ~= "" and f[5] or nil
  if body then
    headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
  local request = wrk.format(f[2], f[3], headers, body)
  if f[1]:sub(1, 1) == "/" then
    table.insert(periodic, { every = tonumber(f[1]:sub(2)), request = request })
  else
    total = total + tonumber(f[1])
    table.insert(entries, { upto = total, request = request })
  end
end

local threads, sent = 0, 0

function setup(thread)
  -- Each thread its own random sequence (unseeded, they would all repeat one).
  threads = threads + 1
  thread:set("seed", os.time() * 100 + threads)
end

function init(args)
  math.randomseed(seed)
end

function request()
  sent = sent + 1
  for _, entry in ipairs(periodic) do
    if sent % entry.every == 0 then
      return entry.request
    end
  end
  local pick = math.random() * total
  for _, entry in ipairs(entries) do
    if pick <= entry.upto then
      return entry.request
    end
  end
  return entries[#entries].request
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("errors connect=%d read=%d write=%d timeout=%d status=%d\n",
    e.connect, e.read, e.write, e.timeout, e.status))
  io.write(string.format("requests %d seconds %.3f\n", summary.requests, summary.duration / 1e6))
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("latency p%s %.3f\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("latency max %.3f\n", latency.max / 1000))
end
