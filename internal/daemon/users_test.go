package daemon

import (
	"errors"
	"os"
	"testing"
)

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
