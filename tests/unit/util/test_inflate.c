#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util/buf.h"
#include "util/inflate.h"

/* Compresses n bytes of src as gzip (wbits 31) or zlib (15) into a malloc'd block. */
static unsigned char *deflate_it(const void *src, size_t n, int wbits, size_t *out_len)
{
    z_stream z = {0};
    cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, n);
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

Test(inflate, gzip_and_zlib_round_trip)
{
    const char *text = "hello hello hello hello, inflate";
    for (int f = 0; f < 2; f++) {
        size_t n;
        unsigned char *c = deflate_it(text, strlen(text), f ? 15 : 31, &n);
        struct bt_buf b;
        bt_buf_init(&b, 1 << 20);
        cr_assert_eq(bt_inflate(c, n, f ? BT_INFLATE_ZLIB : BT_INFLATE_GZIP, 1024, &b), 0);
        cr_assert_eq(b.len, strlen(text));
        cr_assert_eq(memcmp(b.ptr, text, b.len), 0);
        bt_buf_reset(&b);
        cr_assert_eq(bt_inflate(c, n, BT_INFLATE_AUTO, 1024, &b), 0);
        cr_assert_eq(b.len, strlen(text));
        /* the wrong format, a truncated stream and garbage are -EINVAL, out untouched */
        bt_buf_reset(&b);
        cr_assert_eq(bt_inflate(c, n, f ? BT_INFLATE_GZIP : BT_INFLATE_ZLIB, 1024, &b), -EINVAL);
        cr_assert_eq(b.len, 0);
        cr_assert_eq(bt_inflate(c, n - 3, f ? BT_INFLATE_ZLIB : BT_INFLATE_GZIP, 1024, &b),
                     -EINVAL);
        cr_assert_eq(b.len, 0);
        cr_assert_eq(bt_inflate("garbage!", 8, BT_INFLATE_AUTO, 1024, &b), -EINVAL);
        bt_buf_free(&b);
        free(c);
    }
}

Test(inflate, bomb_refused_at_the_cap)
{
    size_t big = 32u << 20, n;
    char *zeros = calloc(1, big);
    unsigned char *c = deflate_it(zeros, big, 31, &n);
    free(zeros);
    cr_assert_lt(n, 64u << 10, "a 32 MiB bomb compresses to %zu bytes", n);
    struct bt_buf b;
    bt_buf_init(&b, 1u << 30);
    cr_assert_eq(bt_inflate(c, n, BT_INFLATE_GZIP, 1u << 20, &b), -E2BIG);
    cr_assert_eq(b.len, 0);
    cr_assert_leq(b.cap, (2u << 20), "allocated %zu bytes for a 1 MiB cap", b.cap);
    /* exactly at the cap is fine */
    cr_assert_eq(bt_inflate(c, n, BT_INFLATE_GZIP, big, &b), 0);
    cr_assert_eq(b.len, big);
    bt_buf_free(&b);
    free(c);
}

Test(inflate, concatenated_gzip_members)
{
    size_t n1, n2;
    unsigned char *a = deflate_it("abc", 3, 31, &n1), *b2 = deflate_it("def", 3, 31, &n2);
    unsigned char *both = malloc(n1 + n2);
    memcpy(both, a, n1);
    memcpy(both + n1, b2, n2);
    struct bt_buf b;
    bt_buf_init(&b, 1024);
    cr_assert_eq(bt_inflate(both, n1 + n2, BT_INFLATE_GZIP, 100, &b), 0);
    cr_assert_str_eq(b.ptr, "abcdef");
    bt_buf_free(&b);
    free(a);
    free(b2);
    free(both);
}
