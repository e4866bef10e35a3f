package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/magnet-fcgi/magnet/luabind"
)

// uploadsFlags reads --upload-dir, --max-upload and --max-files.
func uploadsFlags(ctx *cli.Context) (luabind.Uploads, error) {
	var u luabind.Uploads
	var err error
	if u.MaxBytes, err = sizeFlag(ctx, "max-upload"); err != nil {
		return u, err
	}
	if u.MaxFiles = ctx.Int("max-files"); u.MaxFiles < 1 {
		return u, fmt.Errorf("--max-files %d: want 1 or more", u.MaxFiles)
	}
	if d := ctx.String("upload-dir"); d != "" {
		if u.Dir, err = filepath.Abs(d); err != nil {
			return u, fmt.Errorf("--upload-dir: %w", err)
		}
	}
	return u, nil
}
