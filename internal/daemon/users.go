package daemon

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// ErrRootID reports a request to switch to uid or gid 0, which spawn-fcgi
// and magnetd refuse.
var ErrRootID = errors.New("will not switch to uid or gid 0")

// Identity is a resolved user and group to run workers as (-u, -g) or to
// own the unix socket (-U, -G). Zero values mean "unchanged".
type Identity struct {
	UID, GID int
	// Name is the user's name when known, for supplementary groups.
	Name string
	// Groups are the user's supplementary group ids.
	Groups []uint32
}

// LookupIdentity resolves a user and group given as names or numbers, with
// spawn-fcgi's rules: the group defaults to the user's primary group, and a
// name or default that resolves to 0 is refused. Numeric ids need not exist
// in the user database.
func LookupIdentity(userName, groupName string) (Identity, error) {
	var id Identity
	if userName != "" {
		if n, err := strconv.Atoi(userName); err == nil && n <= 0 {
			return id, fmt.Errorf("user %s: %w", userName, ErrRootID)
		} else if err == nil {
			id.UID = n
			if u, err := user.LookupId(userName); err == nil {
				id.Name = u.Username
				if g, err := strconv.Atoi(u.Gid); err == nil && groupName == "" {
					id.GID = g
				}
			}
		} else {
			u, err := user.Lookup(userName)
			if err != nil {
				return id, fmt.Errorf("can't find user name %s", userName)
			}
			id.UID, _ = strconv.Atoi(u.Uid)
			if id.UID == 0 {
				return id, fmt.Errorf("user %s: %w", userName, ErrRootID)
			}
			id.Name = u.Username
			if groupName == "" {
				id.GID, _ = strconv.Atoi(u.Gid)
				if id.GID == 0 {
					return id, fmt.Errorf("primary group of user %s: %w", userName, ErrRootID)
				}
			}
		}
	}
	if groupName != "" {
		if n, err := strconv.Atoi(groupName); err == nil && n <= 0 {
			return id, fmt.Errorf("group %s: %w", groupName, ErrRootID)
		} else if err == nil {
			id.GID = n
		} else {
			g, err := user.LookupGroup(groupName)
			if err != nil {
				return id, fmt.Errorf("can't find group name %s", groupName)
			}
			id.GID, _ = strconv.Atoi(g.Gid)
			if id.GID == 0 {
				return id, fmt.Errorf("group %s: %w", groupName, ErrRootID)
			}
		}
	}
	if id.Name != "" && id.GID != 0 {
		if u, err := user.Lookup(id.Name); err == nil {
			if gids, err := u.GroupIds(); err == nil {
				for _, s := range gids {
					if g, err := strconv.Atoi(s); err == nil && g != 0 {
						id.Groups = append(id.Groups, uint32(g))
					}
				}
			}
		}
	}
	return id, nil
}

// Credential returns the credential for workers, or nil when the identity
// changes nothing. With only a user, the group is left unchanged as
// spawn-fcgi does.
func (id Identity) Credential() *syscall.Credential {
	if id.UID == 0 && id.GID == 0 {
		return nil
	}
	c := &syscall.Credential{Uid: uint32(syscall.Getuid()), Gid: uint32(syscall.Getgid()), Groups: id.Groups}
	if id.UID != 0 {
		c.Uid = uint32(id.UID)
	}
	if id.GID != 0 {
		c.Gid = uint32(id.GID)
	}
	if c.Groups == nil {
		c.Groups = []uint32{}
	}
	return c
}
