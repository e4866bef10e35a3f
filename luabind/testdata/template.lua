-- A small template renderer, CPU-bound on purpose: it compiles a template
-- with {{name}}, {{#list}}...{{/list}} and {{?cond}}...{{/cond}} sections
-- into a tree, then renders a page of rows through it. Used by
-- BenchmarkTemplate to compare PUC Lua and LuaJIT.

local function escape_html(s)
	s = tostring(s)
	if not s:find("[<>&\"]") then
		return s
	end
	s = s:gsub("&", "&amp;")
	s = s:gsub("<", "&lt;")
	s = s:gsub(">", "&gt;")
	s = s:gsub('"', "&quot;")
	return s
end

local function lookup(ctx, name)
	local v = ctx
	for part in name:gmatch("[^%.]+") do
		if type(v) ~= "table" then
			return nil
		end
		v = v[part]
	end
	return v
end

-- parse turns template text into a list of nodes.
local function parse(text)
	local pos = 1
	local root = { kind = "block", children = {} }
	local stack = { root }
	while true do
		local s, e, sigil, name = text:find("{{([#/%?!]?)%s*([%w_%.]+)%s*}}", pos)
		local top = stack[#stack]
		if not s then
			if pos <= #text then
				top.children[#top.children + 1] = { kind = "text", text = text:sub(pos) }
			end
			break
		end
		if s > pos then
			top.children[#top.children + 1] = { kind = "text", text = text:sub(pos, s - 1) }
		end
		if sigil == "#" or sigil == "?" then
			local node = { kind = sigil == "#" and "list" or "cond", name = name, children = {} }
			top.children[#top.children + 1] = node
			stack[#stack + 1] = node
		elseif sigil == "/" then
			if top.name ~= name then
				error("template: unbalanced section " .. name)
			end
			stack[#stack] = nil
		elseif sigil == "!" then
			top.children[#top.children + 1] = { kind = "raw", name = name }
		else
			top.children[#top.children + 1] = { kind = "var", name = name }
		end
		pos = e + 1
	end
	if #stack ~= 1 then
		error("template: unclosed section " .. stack[#stack].name)
	end
	return root
end

local render_children

local function render_node(node, ctx, out)
	local kind = node.kind
	if kind == "text" then
		out[#out + 1] = node.text
	elseif kind == "var" then
		local v = lookup(ctx, node.name)
		if v ~= nil then
			out[#out + 1] = escape_html(v)
		end
	elseif kind == "raw" then
		local v = lookup(ctx, node.name)
		if v ~= nil then
			out[#out + 1] = tostring(v)
		end
	elseif kind == "cond" then
		if lookup(ctx, node.name) then
			render_children(node, ctx, out)
		end
	elseif kind == "list" then
		local list = lookup(ctx, node.name)
		if type(list) == "table" then
			for i = 1, #list do
				local item = list[i]
				local scope = setmetatable({ index = i, odd = i % 2 == 1 }, { __index = function(_, k)
					local v = item[k]
					if v == nil then
						v = ctx[k]
					end
					return v
				end })
				render_children(node, scope, out)
			end
		end
	end
end

render_children = function(node, ctx, out)
	local children = node.children
	for i = 1, #children do
		render_node(children[i], ctx, out)
	end
end

local page = [[
<html><head><title>{{title}}</title></head><body>
<h1>{{title}}</h1>
{{?intro}}<p class="intro">{{intro}}</p>{{/intro}}
<table>
{{#rows}}<tr class="{{?odd}}odd{{/odd}}"><td>{{index}}</td><td>{{name}}</td><td>{{email}}</td><td>{{score}}</td><td>{{!badge}}</td></tr>
{{/rows}}</table>
<p>{{footer.text}} &mdash; {{footer.year}}</p>
</body></html>
]]

_G.template_cache = _G.template_cache or {}
local tree = parse(page) -- compiled on every request: part of the work measured

local rows = {}
for i = 1, 50 do
	rows[i] = {
		name = "User <" .. i .. ">",
		email = "user" .. i .. "@example.org",
		score = (i * 37) % 101,
		badge = i % 7 == 0 and "<b>star</b>" or "",
	}
end

local out = {}
render_children(tree, {
	title = "Scores & ranks",
	intro = "Fifty users, rendered per request.",
	rows = rows,
	footer = { text = "magnet", year = 2026 },
}, out)
local body = table.concat(out)
print("Content-Type: text/html\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
