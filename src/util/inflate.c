#include "util/inflate.h"

#include <errno.h>
#include <zlib.h>

#include "util/buf.h"

#define CHUNK (64u << 10)

int bt_inflate(const void *in, size_t n, enum bt_inflate_format fmt, size_t max, struct bt_buf *out)
{
    /* windowBits: 15 + 16 gzip only, 15 zlib only, 15 + 32 either (header detection). */
    int wbits = fmt == BT_INFLATE_GZIP ? 15 + 16 : fmt == BT_INFLATE_ZLIB ? 15 : 15 + 32;
    z_stream z = {0};
    size_t start = out->len, produced = 0;
    int rc = 0;
    if (n > UINT_MAX)
        return -E2BIG;
    if (inflateInit2(&z, wbits) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    for (;;) {
        size_t room = max - produced < CHUNK ? max - produced : CHUNK;
        if (room == 0) {
            /* At the cap: one more byte of output means the data is too large. */
            unsigned char probe;
            z.next_out = &probe;
            z.avail_out = 1;
            int zr = inflate(&z, Z_NO_FLUSH);
            if (zr == Z_STREAM_END && z.avail_out == 1 && z.avail_in == 0)
                break;
            rc = (z.avail_out == 0 || zr == Z_STREAM_END) ? -E2BIG : -EINVAL;
            break;
        }
        if ((rc = bt_buf_reserve(out, room)) < 0)
            break;
        z.next_out = (Bytef *)out->ptr + out->len;
        z.avail_out = (uInt)room;
        int zr = inflate(&z, Z_NO_FLUSH);
        size_t got = room - z.avail_out;
        out->len += got;
        produced += got;
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0)
                break;
            if (fmt == BT_INFLATE_ZLIB) {
                rc = -EINVAL; /* trailing garbage */
                break;
            }
            inflateReset(&z); /* another gzip member */
            continue;
        }
        if (zr != Z_OK && !(zr == Z_BUF_ERROR && got)) {
            rc = zr == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
            break;
        }
        if (got == 0 && z.avail_in == 0) {
            rc = -EINVAL; /* truncated */
            break;
        }
    }
    inflateEnd(&z);
    if (rc < 0)
        out->len = start;
    if (out->ptr)
        out->ptr[out->len] = '\0';
    return rc;
}
