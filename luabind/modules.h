/* modules.h: require's search path and the module files it loaded
 * (modules.c), for modules.go. */
#ifndef MAGNET_MODULES_H
#define MAGNET_MODULES_H

#include "magnet.h"

/* mg_modules lists the Lua modules loaded from files since Go last took
 * them: "name\0file\0stat\0", stat being "mtime:size:inode" when
 * loaded ("" when stat failed). C appends; Go reads and empties it between
 * runs. */
typedef struct mg_modules {
	mg_buf loaded;
} mg_modules;

int mg_modules_setup(mg_state *S, mg_modules *M, const char *path, const char *cpath);
int mg_modules_unload(mg_state *S, const char *names);

#endif
