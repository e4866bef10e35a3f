package sqlbind

import (
	"database/sql"
	"io"
	"log"
	"net"
	"os"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/magnet-fcgi/magnet/internal/pollconn"
)

// driverInfo is one of LuaSQL's drivers on a database/sql driver.
type driverInfo struct {
	title string // as in LuaSQL's error messages
	// open opens a database whose connections stop waiting at dl's time
	// (the network drivers' through internal/pollconn, SQLite's: sqlite.go).
	open   func(dl *pollconn.Deadline, source, user, password, host, port string) (*sql.DB, error)
	escape func(string) string
}

// drivers by LuaSQL's names (luasql.mysql, luasql.postgres, luasql.sqlite3).
var drivers = map[string]*driverInfo{
	"mysql":    {title: "MySQL", open: openMySQL, escape: escapeMySQL},
	"postgres": {title: "PostgreSQL", open: openPostgres, escape: escapeQuotes},
	"sqlite3":  {title: "SQLite3", open: openSQLite, escape: escapeQuotes},
}

// The driver's logger would print to the worker's stderr what scripts get
// as errors anyway ("closing bad idle connection" after a restart).
func init() { mysql.SetLogger(log.New(io.Discard, "", 0)) }

// mysqlSocket is where Debian's MariaDB and MySQL listen; like libmysql,
// host "localhost" (or none) without a port means this socket.
const mysqlSocket = "/run/mysqld/mysqld.sock"

// openMySQL: source is the database name; a host starting with "/" is a
// unix socket.
func openMySQL(dl *pollconn.Deadline, source, user, password, host, port string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.DialFunc = pollconn.Dialer(dl)
	cfg.User, cfg.Passwd, cfg.DBName = user, password, source
	switch {
	case strings.HasPrefix(host, "/"):
		cfg.Net, cfg.Addr = "unix", host
	case (host == "" || host == "localhost") && port == "":
		cfg.Net, cfg.Addr = "unix", mysqlSocket
		if _, err := os.Stat(mysqlSocket); err != nil {
			cfg.Net, cfg.Addr = "tcp", "127.0.0.1:3306"
		}
	default:
		if host == "" {
			host = "localhost"
		}
		if port == "" || port == "0" {
			port = "3306"
		}
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(host, port)
	}
	// Before each statement outside a transaction the driver checks that
	// the server has not closed the connection (a read that must find
	// nothing), so that database/sql reconnects instead of the statement
	// failing. Over a unix socket the check costs a system call for
	// nothing: a write to a closed peer fails at once (EPIPE), before
	// anything was sent, which the driver reports the same way.
	cfg.CheckConnLiveness = cfg.Net != "unix"
	// Placeholders are filled in by the driver (escaped for the
	// connection's character set), which saves a round trip to prepare.
	cfg.InterpolateParams = true
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// openPostgres: source is a database name or, as in LuaSQL, a connection
// string ("dbname=x host=y" or a postgres:// URL); a host starting with
// "/" is the directory of the server's unix socket.
func openPostgres(dl *pollconn.Deadline, source, user, password, host, port string) (*sql.DB, error) {
	conninfo := ""
	if strings.Contains(source, "=") || strings.HasPrefix(source, "postgres") && strings.Contains(source, "://") {
		conninfo = source
		source = ""
	}
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return nil, err
	}
	if source != "" {
		cfg.Database = source
	}
	if user != "" {
		cfg.User = user
	}
	if password != "" {
		cfg.Password = password
	}
	if host != "" {
		cfg.Host = host
		cfg.Fallbacks = nil
	}
	if port != "" {
		p, err := parsePort(port)
		if err != nil {
			return nil, err
		}
		cfg.Port = p
		for _, f := range cfg.Fallbacks {
			f.Port = p
		}
	}
	cfg.DialFunc = pollconn.CheckedDialer(dl)
	return stdlib.OpenDB(*cfg), nil
}

func parsePort(s string) (uint16, error) {
	p, err := net.LookupPort("tcp", s)
	return uint16(p), err
}

// escapeMySQL escapes as mysql_real_escape_string does.
func escapeMySQL(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			b.WriteString(`\0`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\\', '\'', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case 0x1a:
			b.WriteString(`\Z`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// escapeQuotes doubles single quotes, as PQescapeStringConn does with
// standard_conforming_strings (PostgreSQL's default) and as SQLite needs.
func escapeQuotes(s string) string { return strings.ReplaceAll(s, "'", "''") }
