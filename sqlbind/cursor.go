package sqlbind

import (
	"bytes"
	"database/sql"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/magnet-fcgi/magnet/luabind"
)

// cursor is a statement's whole result, read when it ran, in the values
// Lua gets: numbers, strings, booleans and nil (NULL), row after row. The
// strings' bytes share one buffer. A finished cursor's storage serves the
// next result (binding.spare), so a query allocates none of its own.
type cursor struct {
	names []string
	types []string
	vals  []value // len(names) per row
	buf   []byte  // the bytes of the string values
	pos   int     // index in vals of the next row
	held  int     // the bytes counted in binding.held
	cols  []column
	dest  []any // &cols[i], for Rows.Scan
}

// value is one value of a result, in 16 bytes.
type value struct {
	typ uint8  // luabind.TypeNil, TypeBoolean, TypeNumber or TypeString
	n   uint32 // a string's length
	x   uint64 // a number's bits, a boolean (1 for true), a string's offset in buf
}

// errTooLong is a value that one value cannot hold.
var errTooLong = errors.New("a value longer than 4 GiB")

// column scans one column's values into its cursor. As a sql.Scanner it
// gets the driver's values as they are, without database/sql's copy of
// their bytes.
type column struct {
	cur  *cursor
	kind kind
}

// Scan appends src, converted for Lua, to the cursor's values.
func (col *column) Scan(src any) error { return col.cur.add(src, col.kind) }

// Cursors whose storage outgrew these are not kept for reuse.
const (
	maxSpareVals = 2048
	maxSpareBuf  = 64 << 10
)

// Integers past 2^53 do not fit a Lua number exactly; they go to Lua as
// strings.
const maxExact = 1 << 53

// errTooBig is a result that would take more memory than the script has
// left: a cursor's result lives in Go, outside the Lua heap, and counts
// against --memory-limit with the results of the other open cursors.
var errTooBig = errors.New("the result is larger than the memory the script has left under --memory-limit; fetch fewer rows (LIMIT) or close other cursors")

// room is how many bytes a new result may take (negative: no limit).
func (b *binding) room(c *luabind.Call) int {
	left, ok := c.MemoryLeft()
	if !ok {
		return -1
	}
	return max(int(min(left, math.MaxInt32))-b.held, 0)
}

// size is the memory cur's result takes, as counted against the limit.
func (cur *cursor) size() int { return len(cur.vals)*16 + len(cur.buf) }

// readRows reads and closes rows, stopping with errTooBig once the result
// passes room bytes (negative: no limit); a result without columns is nil.
func (b *binding) readRows(rows *sql.Rows, room int) (*cursor, error) {
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	if len(cts) == 0 {
		return nil, rows.Err()
	}
	cur := b.spare
	b.spare = nil
	if cur == nil {
		cur = &cursor{}
	}
	cur.reset(len(cts))
	for i, ct := range cts {
		t := b.lower(ct.DatabaseTypeName())
		cur.names = append(cur.names, ct.Name())
		cur.types = append(cur.types, t)
		cur.cols[i].kind = kindOf(t)
	}
	for rows.Next() {
		if err := rows.Scan(cur.dest...); err != nil {
			return nil, err
		}
		if room >= 0 && cur.size() > room {
			return nil, errTooBig
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	cur.held = cur.size()
	b.held += cur.held
	return cur, nil
}

// A result of at most wholeVals values and wholeBytes bytes of strings
// goes to Lua whole, where rows.c (luabind) fetches its rows without a
// call into Go; a larger one stays here and is fetched row by row, so
// that it never sits in Lua's heap twice over.
var (
	wholeVals  = 4096 // a variable for the tests, which turn it off
	wholeBytes = 128 << 10
)

// small reports whether cur's result goes to Lua whole, given room bytes
// left to the script (negative: no limit): Lua's copy takes more than
// cur.size, so it needs room for three times that.
func (cur *cursor) small(room int) bool {
	return len(cur.vals) <= wholeVals && len(cur.buf) <= wholeBytes && (room < 0 || 3*cur.size() <= room)
}

// pushWhole pushes cur's result as the cursor table that rows.c reads:
// values, names, columns, position, count; luasql.lua adds luasql.null
// at 6, and the types go at 7 for getcoltypes, in one string, each ended
// by a zero byte (they are rarely asked for).
func (cur *cursor) pushWhole(c *luabind.Call) {
	c.NewTable(7, 0)
	c.NewTable(len(cur.vals), 0)
	for i := range cur.vals {
		if cur.vals[i].typ != luabind.TypeNil {
			cur.push(c, &cur.vals[i])
			c.SetIndex(-2, i+1)
		}
	}
	c.SetIndex(-2, 1)
	pushList(c, cur.names)
	c.SetIndex(-2, 2)
	c.PushNumber(float64(len(cur.names)))
	c.SetIndex(-2, 3)
	c.PushNumber(0)
	c.SetIndex(-2, 4)
	c.PushNumber(float64(len(cur.vals)))
	c.SetIndex(-2, 5)
	end := len(cur.buf) // the values are pushed: buf's tail is free
	for _, t := range cur.types {
		cur.buf = append(append(cur.buf, t...), 0)
	}
	c.PushBytes(cur.buf[end:])
	cur.buf = cur.buf[:end]
	c.SetIndex(-2, 7)
}

// reset empties cur for a result of n columns.
func (cur *cursor) reset(n int) {
	cur.names = cur.names[:0]
	cur.types = cur.types[:0]
	cur.vals = cur.vals[:0]
	cur.buf = cur.buf[:0]
	cur.pos = 0
	if cap(cur.cols) < n {
		cur.cols = make([]column, n)
		cur.dest = make([]any, n)
		for i := range cur.cols {
			cur.dest[i] = &cur.cols[i]
		}
	}
	cur.cols = cur.cols[:n]
	cur.dest = cur.dest[:n]
	for i := range cur.cols {
		cur.cols[i].cur = cur
	}
}

// recycle keeps a finished cursor's storage for the next result.
func (b *binding) recycle(cur *cursor) {
	b.held -= cur.held
	cur.held = 0
	if cap(cur.vals) > maxSpareVals || cap(cur.buf) > maxSpareBuf {
		return
	}
	clear(cur.names[:cap(cur.names)])
	clear(cur.types[:cap(cur.types)])
	b.spare = cur
}

// lower is t in lower case, kept so that a type name is lowered once.
func (b *binding) lower(t string) string {
	if l, ok := b.types[t]; ok {
		return l
	}
	l := strings.ToLower(t)
	if len(b.types) < 256 {
		if b.types == nil {
			b.types = map[string]string{}
		}
		b.types[t] = l
	}
	return l
}

type kind uint8

const (
	kindOther kind = iota
	kindInt
	kindFloat
	kindDate
)

// kindOf classifies a column by its database type name, for drivers that
// give text (MySQL's text protocol): integers and floats become numbers,
// DECIMAL stays a string so it stays exact.
func kindOf(t string) kind {
	switch t {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year",
		"unsigned tinyint", "unsigned smallint", "unsigned mediumint", "unsigned int", "unsigned bigint",
		"int2", "int4", "int8":
		return kindInt
	case "float", "double", "real", "float4", "float8", "double precision":
		return kindFloat
	case "date":
		return kindDate
	}
	return kindOther
}

// add appends src, a driver's value of a column of kind k, as Lua gets it.
func (cur *cursor) add(src any, k kind) error {
	switch v := src.(type) {
	case bool:
		x := uint64(0)
		if v {
			x = 1
		}
		cur.vals = append(cur.vals, value{typ: luabind.TypeBoolean, x: x})
	case float64:
		cur.num(v)
	case float32:
		cur.num(float64(v))
	case int64:
		if v > maxExact || v < -maxExact {
			return cur.str(strconv.AppendInt(cur.buf, v, 10))
		}
		cur.num(float64(v))
	case string:
		return cur.str(append(cur.buf, v...))
	case []byte:
		switch k {
		case kindInt:
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n <= maxExact && n >= -maxExact {
				cur.num(float64(n))
				return nil
			}
		case kindFloat:
			if f, err := strconv.ParseFloat(string(v), 64); err == nil {
				cur.num(f)
				return nil
			}
		}
		return cur.str(append(cur.buf, v...))
	case time.Time:
		if k == kindDate {
			return cur.str(v.AppendFormat(cur.buf, time.DateOnly))
		}
		return cur.str(v.AppendFormat(cur.buf, "2006-01-02 15:04:05.999999"))
	default: // NULL, or a type Lua has no value for
		cur.vals = append(cur.vals, value{typ: luabind.TypeNil})
	}
	return nil
}

func (cur *cursor) num(f float64) {
	cur.vals = append(cur.vals, value{typ: luabind.TypeNumber, x: math.Float64bits(f)})
}

// str adds the string that buf, cur.buf with the string appended, ends in.
func (cur *cursor) str(buf []byte) error {
	n := len(buf) - len(cur.buf)
	if n > math.MaxUint32 {
		return errTooLong
	}
	cur.vals = append(cur.vals, value{typ: luabind.TypeString, n: uint32(n), x: uint64(len(cur.buf))})
	cur.buf = buf
	return nil
}

func (cur *cursor) push(c *luabind.Call, v *value) {
	switch v.typ {
	case luabind.TypeNil:
		c.PushNil()
	case luabind.TypeBoolean:
		c.PushBool(v.x != 0)
	case luabind.TypeNumber:
		c.PushNumber(math.Float64frombits(v.x))
	case luabind.TypeString:
		c.PushBytes(cur.buf[v.x : v.x+uint64(v.n)])
	}
}

// fetch(cursor [, t, mode]) -> the next row's values (nil for NULL), or
// nothing at the end, which closes the cursor. Given a table t, the row
// goes into t instead, as LuaSQL's C fetch does (raw sets): by column
// number if mode (default "n") holds "n", by column name if it holds "a";
// the result is then true, and the number of columns as well when a
// numbered value is NULL (the caller stores luasql.null there, which Go
// cannot give). A t that is not a table, or a mode not a string, gives
// false and the position of the bad argument of cur:fetch, and no row.
func (b *binding) fetch(c *luabind.Call) (int, error) {
	into := c.Top() >= 2
	mode := []byte("n")
	if into {
		bad := 0
		switch {
		case c.ArgType(2) != luabind.TypeTable:
			bad = 1
		case c.ArgType(3) == luabind.TypeString:
			mode = c.ArgBytes(3)
		case !c.IsNoneOrNil(3):
			bad = 2
		}
		if bad != 0 {
			c.PushBool(false)
			c.PushNumber(float64(bad))
			return 2, nil
		}
	}
	cur, h, err := handle[*cursor](b, c, "cursor")
	if err != nil {
		return 0, err
	}
	n := len(cur.names)
	if cur.pos >= len(cur.vals) {
		delete(b.objs, h)
		b.recycle(cur)
		return 0, nil
	}
	row := cur.vals[cur.pos : cur.pos+n]
	cur.pos += n
	if !into {
		for i := range row {
			cur.push(c, &row[i])
		}
		return n, nil
	}
	nulls := false
	if bytes.IndexByte(mode, 'n') >= 0 {
		for i := range row {
			cur.push(c, &row[i])
			c.SetIndex(2, i+1)
			nulls = nulls || row[i].typ == luabind.TypeNil
		}
	}
	if bytes.IndexByte(mode, 'a') >= 0 {
		for i := range row {
			cur.push(c, &row[i])
			c.SetField(2, cur.names[i])
		}
	}
	c.PushBool(true)
	if nulls {
		c.PushNumber(float64(n))
		return 2, nil
	}
	return 1, nil
}

// colnames(cursor) -> {names}
func (b *binding) colnames(c *luabind.Call) (int, error) {
	cur, _, err := handle[*cursor](b, c, "cursor")
	if err != nil {
		return 0, err
	}
	pushList(c, cur.names)
	return 1, nil
}

// coltypes(cursor) -> {database type names, lower case}
func (b *binding) coltypes(c *luabind.Call) (int, error) {
	cur, _, err := handle[*cursor](b, c, "cursor")
	if err != nil {
		return 0, err
	}
	pushList(c, cur.types)
	return 1, nil
}

func pushList(c *luabind.Call, l []string) {
	c.NewTable(len(l), 0)
	for i, s := range l {
		c.PushString(s)
		c.SetIndex(-2, i+1)
	}
}

// numrows(cursor) -> the number of rows of the result
func (b *binding) numrows(c *luabind.Call) (int, error) {
	cur, _, err := handle[*cursor](b, c, "cursor")
	if err != nil {
		return 0, err
	}
	c.PushNumber(float64(len(cur.vals) / len(cur.names)))
	return 1, nil
}

// readArgs reads the placeholder values from argument i on: nil, booleans,
// numbers (integers as int64) and strings. The slice is the binding's,
// valid until the next call.
func (b *binding) readArgs(c *luabind.Call, i int) ([]any, error) {
	clear(b.args)
	args := b.args[:0]
	for ; i <= c.Top(); i++ {
		switch c.ArgType(i) {
		case luabind.TypeNil:
			args = append(args, nil)
		case luabind.TypeBoolean:
			args = append(args, c.Bool(i))
		case luabind.TypeNumber:
			f := c.ArgNumber(i)
			if f == math.Trunc(f) && math.Abs(f) <= maxExact {
				args = append(args, int64(f))
			} else {
				args = append(args, f)
			}
		case luabind.TypeString:
			args = append(args, string(c.ArgBytes(i)))
		default:
			return nil, c.ArgError(i, "nil, boolean, number, string or luasql.null expected, got "+c.TypeName(i))
		}
	}
	if cap(args) <= 64 {
		b.args = args
	}
	return args, nil
}

// isQuery reports whether a statement returns rows, by its first keyword
// (or a RETURNING clause): those run as queries and give a cursor, the
// others give the number of rows they changed.
func isQuery(q string) bool {
	s := q
	for {
		s = strings.TrimLeft(s, " \t\r\n(")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return false
			}
			s = s[i:]
			continue
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s, "*/")
			if i < 0 {
				return false
			}
			s = s[i+2:]
			continue
		}
		break
	}
	end := strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	})
	if end < 0 {
		end = len(s)
	}
	for _, k := range queryWords {
		if strings.EqualFold(s[:end], k) {
			return true
		}
	}
	return containsWord(q, "returning")
}

// queryWords are the first keywords of statements that return rows.
var queryWords = [...]string{"select", "with", "show", "describe", "desc", "explain", "pragma", "values", "table", "call"}

func containsWord(s, w string) bool {
	ls := strings.ToLower(s)
	for i := 0; ; {
		j := strings.Index(ls[i:], w)
		if j < 0 {
			return false
		}
		j += i
		k := j + len(w)
		if (j == 0 || !isWordByte(ls[j-1])) && (k == len(ls) || !isWordByte(ls[k])) {
			return true
		}
		i = k
	}
}

func isWordByte(b byte) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9'
}
