package supervisor

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond}
	for i, w := range want {
		if got := backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := backoff(100); got != backoffMax {
		t.Errorf("backoff(100) = %v, want the cap %v", got, backoffMax)
	}
}

func TestLookupIdentity(t *testing.T) {
	for _, tt := range []struct{ user, group string }{{"root", ""}, {"0", ""}, {"", "0"}, {"", "root"}} {
		if _, err := LookupIdentity(tt.user, tt.group); !errors.Is(err, ErrRootID) {
			t.Errorf("LookupIdentity(%q, %q) = %v, want ErrRootID", tt.user, tt.group, err)
		}
	}
	id, err := LookupIdentity("", "")
	if err != nil || id.Credential() != nil {
		t.Errorf("empty identity: %+v, %v", id, err)
	}
	id, err = LookupIdentity("12345", "23456")
	if err != nil || id.UID != 12345 || id.GID != 23456 {
		t.Errorf("numeric identity: %+v, %v", id, err)
	}
	if _, err := LookupIdentity("no-such-user-here", ""); err == nil {
		t.Errorf("unknown user accepted")
	}
	if _, err := os.Stat("/etc/passwd"); err == nil {
		id, err := LookupIdentity("nobody", "")
		if err != nil || id.UID == 0 || id.GID == 0 {
			t.Errorf("nobody: %+v, %v", id, err)
		}
		if c := id.Credential(); c == nil || int(c.Uid) != id.UID {
			t.Errorf("credential %+v", c)
		}
	}
}
