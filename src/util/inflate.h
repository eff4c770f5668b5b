/*
 * inflate: decompresses gzip or zlib data with a hard cap on the output, for bodies that come
 * from outside (a gzip push request, a compressed GELF message). A small input that would grow
 * past the cap (a "gzip bomb") is refused as soon as the cap is passed, without allocating
 * more than the cap. The only file that includes zlib.h.
 */
#ifndef BT_UTIL_INFLATE_H
#define BT_UTIL_INFLATE_H

#include <stddef.h>

struct bt_buf;

enum bt_inflate_format {
    BT_INFLATE_GZIP, /* RFC 1952; concatenated members are read one after the other */
    BT_INFLATE_ZLIB, /* RFC 1950 */
    BT_INFLATE_AUTO, /* gzip or zlib, from the header */
};

/* Appends the decompressed bytes of in[0, n) to out (cap: max bytes appended). 0, -E2BIG past
 * max, -EINVAL for data that is not valid (or is truncated), -ENOMEM. On error out keeps
 * whatever was appended before the call. */
int bt_inflate(const void *in, size_t n, enum bt_inflate_format fmt, size_t max,
               struct bt_buf *out);

#endif
