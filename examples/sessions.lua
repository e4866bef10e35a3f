-- Cookie sessions: a visit counter per browser, kept server-side.
--
-- On one host the sessions live in a shared dictionary, which every worker
-- of the pool sees:   magnetd --shared sessions=16M ...
-- Behind a balancer with several hosts, keep them in Redis, which every
-- host reaches: change the line marked STORE to
--   local store = redis_store("10.0.0.5:6379")

local TTL = 1800 -- seconds a session lives after its last visit

local function shared_store(name)
	local d = magnet.shared[name]
	return {
		get = function(k) return d:get(k) end,
		incr = function(k) return d:incr(k, 1, 0) end,
		touch = function(k) return d:expire(k, TTL) end,
	}
end

local function redis_store(addr)
	-- one connection per worker and address, reused by every request
	local r = assert(magnet.redis.connect(addr, { timeout = 0.5 }))
	return {
		get = function(k) return r:get(k) end,
		incr = function(k) return r:incr(k) end,
		touch = function(k) return r:expire(k, TTL) end,
	}
end

local store = shared_store("sessions") -- STORE

-- Only ids this store issued are taken: an unknown one gets a fresh id.
local sid = magnet.request.cookies.sid
if type(sid) ~= "string" or not sid:match("^%x+$") or not store.get("sess:" .. sid) then
	sid = magnet.hex(magnet.random_bytes(16))
end
local key = "sess:" .. sid
local visits, err = store.incr(key)
if not visits then
	magnet.log("error", "sessions: ", err)
	magnet.exit(503, "session store unavailable\n")
end
store.touch(key)

magnet.set_cookie("sid", sid, { path = "/", http_only = true, same_site = "Lax", max_age = TTL })
magnet.header["Content-Type"] = "text/plain"
print("visits " .. visits)
