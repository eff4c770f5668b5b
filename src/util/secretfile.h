/*
 * secretfile: reads a small secret file (password, token, client secret) whole, with
 * surrounding whitespace trimmed, as Prometheus' HTTP client does. Files are read at each
 * use, so a rotated secret is picked up without a restart.
 */
#ifndef BT_SECRETFILE_H
#define BT_SECRETFILE_H

#include <stddef.h>

/* Reads path into out (NUL-terminated, trimmed). 0, -EFBIG if it does not fit in outlen - 1
 * bytes, or -errno of open/read. */
int bt_read_secret(const char *path, char *out, size_t outlen);

#endif
