package sqlbind

import (
	"bytes"
	"database/sql"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/magnet-fcgi/magnet/luabind"
)

// cursor is a statement's whole result, in the values Lua gets: int64,
// float64, string, bool or nil (NULL).
type cursor struct {
	names []string
	types []string
	rows  [][]any
	pos   int
}

// Integers past 2^53 do not fit a Lua number exactly; they go to Lua as
// strings.
const maxExact = 1 << 53

// readRows reads and closes rows; a result without columns is nil.
func readRows(rows *sql.Rows) (*cursor, error) {
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	if len(cts) == 0 {
		return nil, rows.Err()
	}
	cur := &cursor{names: make([]string, len(cts)), types: make([]string, len(cts))}
	kinds := make([]kind, len(cts))
	for i, ct := range cts {
		cur.names[i] = ct.Name()
		cur.types[i] = strings.ToLower(ct.DatabaseTypeName())
		kinds[i] = kindOf(cur.types[i])
	}
	dest := make([]any, len(cts))
	ptrs := make([]any, len(cts))
	for i := range dest {
		ptrs[i] = &dest[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]any, len(dest))
		for i, v := range dest {
			row[i] = luaValue(v, kinds[i])
		}
		cur.rows = append(cur.rows, row)
	}
	return cur, rows.Err()
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

func luaValue(v any, k kind) any {
	switch v := v.(type) {
	case nil, bool, float64, string:
		return v
	case int64:
		if v > maxExact || v < -maxExact {
			return strconv.FormatInt(v, 10)
		}
		return v
	case float32:
		return float64(v)
	case []byte:
		switch k {
		case kindInt:
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n <= maxExact && n >= -maxExact {
				return n
			}
		case kindFloat:
			if f, err := strconv.ParseFloat(string(v), 64); err == nil {
				return f
			}
		}
		return string(v)
	case time.Time:
		if k == kindDate {
			return v.Format(time.DateOnly)
		}
		return v.Format("2006-01-02 15:04:05.999999")
	}
	return nil
}

func push(c *luabind.Call, v any) {
	switch v := v.(type) {
	case nil:
		c.PushNil()
	case bool:
		c.PushBool(v)
	case int64:
		c.PushNumber(float64(v))
	case float64:
		c.PushNumber(v)
	case string:
		c.PushString(v)
	}
}

// fetch(cursor [, t, mode]) -> the next row's values (nil for NULL), or
// nothing at the end, which closes the cursor. Given a table t, the row
// goes into t instead, as LuaSQL's C fetch does (raw sets): by column
// number if mode holds "n", by column name if it holds "a"; the result is
// then true, and the number of columns as well when a numbered value is
// NULL (the caller stores luasql.null there, which Go cannot give).
func (b *binding) fetch(c *luabind.Call) (int, error) {
	cur, h, err := handle[*cursor](b, c, "cursor")
	if err != nil {
		return 0, err
	}
	if cur.pos >= len(cur.rows) {
		delete(b.objs, h)
		return 0, nil
	}
	row := cur.rows[cur.pos]
	cur.rows[cur.pos] = nil
	cur.pos++
	if c.ArgType(2) != luabind.TypeTable {
		for _, v := range row {
			push(c, v)
		}
		return len(row), nil
	}
	mode := c.ArgBytes(3)
	nulls := false
	if bytes.IndexByte(mode, 'n') >= 0 {
		for i, v := range row {
			push(c, v)
			c.SetIndex(2, i+1)
			nulls = nulls || v == nil
		}
	}
	if bytes.IndexByte(mode, 'a') >= 0 {
		for i, v := range row {
			push(c, v)
			c.SetField(2, cur.names[i])
		}
	}
	c.PushBool(true)
	if nulls {
		c.PushNumber(float64(len(row)))
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
	c.PushNumber(float64(len(cur.rows)))
	return 1, nil
}

// readArgs reads the placeholder values from argument i on: nil, booleans,
// numbers (integers as int64) and strings.
func readArgs(c *luabind.Call, i int) ([]any, error) {
	if c.Top() < i {
		return nil, nil
	}
	args := make([]any, 0, c.Top()-i+1)
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
	switch strings.ToLower(s[:end]) {
	case "select", "with", "show", "describe", "desc", "explain", "pragma", "values", "table", "call":
		return true
	}
	return containsWord(q, "returning")
}

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
