/*
 * tmpdir: temporary directories for tests, removed recursively at the end.
 */
#ifndef BT_TEST_TMPDIR_H
#define BT_TEST_TMPDIR_H

#include <stddef.h>

/* Creates a fresh directory under $TMPDIR (or /tmp) and writes its path to out. 0 or -errno. */
int bt_tmpdir_make(char *out, size_t outlen);
/* Removes path and everything below it. */
void bt_tmpdir_remove(const char *path);
/* Writes len bytes to dir/name (created or truncated). 0 or -errno. */
int bt_tmpdir_write(const char *dir, const char *name, const char *data, size_t len);
/* Appends len bytes to dir/name. 0 or -errno. */
int bt_tmpdir_append(const char *dir, const char *name, const char *data, size_t len);

#endif
