/* respond.h: the response helpers and string functions of respond.c
 * that run.c and headers.c use. Safety rules: doc.go. */
#ifndef MAGNET_RESPOND_H
#define MAGNET_RESPOND_H

#include "magnet.h"

/* mg_exit_key: magnet.exit raises a light userdata to it, which the
 * message handler passes through and mg_run_protected takes for a normal
 * end of the script. */
extern char mg_exit_key;

/* mg_reason is the reason phrase of an HTTP status ("" when unknown). */
const char *mg_reason(int status);

/* mg_batteries adds the C helpers to the magnet table (under lua_cpcall). */
int mg_batteries(mg_state *S);

#endif
