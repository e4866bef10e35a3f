-- A file upload: the form posts multipart/form-data; magnet.request.files
-- holds each file as {filename, content_type, size, path}, already on disk
-- (--upload-dir) and removed when the request ends. To keep one, move it:
-- os.rename(f.path, "/srv/uploads/" .. name) on the same filesystem.
local r = magnet.request
magnet.header["Content-Type"] = "text/html; charset=utf-8"
print("<!doctype html><title>Upload</title>")
if r.method == "POST" then
	local ok, files = pcall(function() return r.files end)
	if not ok then
		-- over --max-upload or --max-files, or a malformed body
		magnet.status = 400
		print("<p>Upload failed: ", magnet.escape_html(files), "</p>")
		return
	end
	local list = files.doc or {}
	if list.path then list = {list} end -- one file, or a list of them
	print("<p>", magnet.escape_html(r.post.title or ""), ": ", #list, " file(s)</p><ul>")
	for _, f in ipairs(list) do
		local h = assert(io.open(f.path, "rb"))
		local head = h:read(16) or ""
		h:close()
		print("<li>", magnet.escape_html(f.filename), " (", magnet.escape_html(f.content_type), ", ",
			f.size, " bytes) starts with ", magnet.hex(head), "</li>")
	end
	print("</ul>")
end
print([[<form method="post" enctype="multipart/form-data">
<input name="title"> <input type="file" name="doc" multiple> <button>Upload</button>
</form>]])
