/* state.h - server5's subscriber table kept in a file (--state FILE).
 *
 * One "IP:PORT" per line.  Written whole on every change: to FILE.tmp,
 * flushed to disk, then renamed over FILE, so a crash leaves either the
 * old table or the new one, never half of one. */
#ifndef STATE_H
#define STATE_H

#include <stddef.h>

/* 0, or -1 with errno set. */
int state_save(const char *path, const char *contents);

/* The file's contents in a new string; NULL with errno ENOENT when there
 * is no such file (a first start), or another errno. */
char *state_load(const char *path);

#endif
