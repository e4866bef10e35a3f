-- A form with a cookie and a redirect after POST: the name posted is kept
-- in a cookie, and the page greets it, escaped.
local r = magnet.request
if r.method == "POST" then
	local name = r.post.name or ""
	magnet.set_cookie("name", magnet.escape_uri(name), {path = "/", http_only = true, same_site = "Lax"})
	magnet.log("info", "new name ", name)
	magnet.redirect(r.params.SCRIPT_NAME or "/", 303)
end
magnet.header["Content-Type"] = "text/html; charset=utf-8"
local name = r.cookies.name and magnet.unescape_uri(r.cookies.name)
print("<!doctype html><title>Hello</title>")
if name then print("<p>Hello, " .. magnet.escape_html(name) .. "!</p>") end
print([[<form method="post"><input name="name"><button>Go</button></form>]])
