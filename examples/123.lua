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

cgi_send_response("123")
