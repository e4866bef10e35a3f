header = {
        ["Content-Type"] = "text/html",
        ["Status"] = "200"
}

function cgi_send_response(cnt)
        local o = ""

        header["Content-Length"] = string.len(cnt)

        for k, v in pairs(header) do
                o = o .. k .. ": " .. v .. "\r\n"
        end
        o = o .. "\r\n"
        print(o .. cnt)
end

o = [[<table border="1">
<tr><th width="50%">script-name</th>
<th width="20%">mtime</th><th width="20%">hits</th></tr>
]]
for k, v in pairs(magnet.cache) do
        o = o .. string.format([[<tr><td>%s</td>
                <td align="right">%s</td>
                <td align="right">%d</td></tr>]],
                k, os.date("%c", v.mtime), v.hits)
end
o = o .. "</table>"
cgi_send_response(o)
