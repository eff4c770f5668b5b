#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/lokipush.h"

struct pairs {
    char s[512];
};

static int collect(void *ctx, const char *n, size_t nl, const char *v, size_t vl)
{
    struct pairs *p = ctx;
    size_t l = strlen(p->s);
    snprintf(p->s + l, sizeof(p->s) - l, "%.*s=[%.*s];", (int)nl, n, (int)vl, v);
    return 0;
}

static int labels(const char *s, struct pairs *p)
{
    char scratch[256];
    p->s[0] = '\0';
    return bt_lokipush_labels(s, strlen(s), scratch, collect, p);
}

Test(lokipush, labels_strings_as_go_quotes_them)
{
    struct pairs p;
    cr_assert_eq(labels("{a=\"b\", c_1=\"d\\\"e\\\\f\\n\"}", &p), 0);
    cr_assert_str_eq(p.s, "a=[b];c_1=[d\"e\\f\n];");
    cr_assert_eq(labels(" { x = \"\\u00e9\\x41\\101\" } ", &p), 0);
    cr_assert_str_eq(p.s, "x=[\xc3\xa9"
                          "AA];");
    cr_assert_eq(labels("{}", &p), 0);
    cr_assert_str_eq(p.s, "");
    const char *bad[] = {"",
                         "{",
                         "{a}",
                         "{a=b}",
                         "{a=\"b}",
                         "{a=\"b\"",
                         "{a=\"b\",}",
                         "{1a=\"b\"}",
                         "{a=\"\\q\"}",
                         "{a=\"b\"}x",
                         "a=\"b\"",
                         "{a=\"\\u12\"}",
                         "{a=\"\\ud800\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(labels(bad[i], &p), -EINVAL, "accepted %s", bad[i]);
}

Test(lokipush, json_streams_values_and_metadata)
{
    const char *j = "{\"streams\":[{\"stream\":{\"app\":\"a\"},\"values\":[[\"123\",\"one\"],"
                    "[\"124\",\"two\",{\"t\":\"x\"}]]},{\"stream\":{},\"values\":[]}]}";
    struct bt_lokipush p;
    char err[128];
    cr_assert_eq(bt_lokipush_decode(&p, BT_LOKIPUSH_JSON, j, strlen(j), 1 << 20, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(p.n_streams, 2);
    cr_assert_eq(p.n_entries, 2);
    cr_assert_null(p.streams[0].labels);
    cr_assert_eq(p.streams[0].n_lab, 1);
    cr_assert_eq(p.entries[0].ts_ns, 123);
    cr_assert_eq(p.entries[1].n_meta, 1);
    cr_assert_str_eq(p.kv[p.entries[1].meta].value, "x");
    bt_lokipush_free(&p);
    const char *bad[] = {"",
                         "[]",
                         "{\"streams\":{}}",
                         "{\"streams\":[{\"stream\":{}}]}",
                         "{\"streams\":[{\"stream\":{},\"values\":[[\"x\",\"l\"]]}]}",
                         "{\"streams\":[{\"stream\":{},\"values\":[[\"1\"]]}]}",
                         "{\"streams\":[{\"stream\":{\"a\":1},\"values\":[]}]}",
                         "{\"streams\":[{\"stream\":{},\"values\":[[\"1\",\"l\",{\"m\":2}]]}]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(bt_lokipush_decode(&p, BT_LOKIPUSH_JSON, bad[i], strlen(bad[i]), 1 << 20, err,
                                        sizeof(err)),
                     -EINVAL, "accepted %s", bad[i]);
}

Test(lokipush, protobuf_garbage_and_size_cap)
{
    struct bt_lokipush p;
    char err[128];
    cr_assert_eq(bt_lokipush_decode(&p, BT_LOKIPUSH_PROTO, "garbage", 7, 1 << 20, err, sizeof(err)),
                 -EINVAL);
    /* a snappy header claiming 100 MiB (varint) is refused before anything is allocated */
    const unsigned char claim[] = {0x80, 0x80, 0x80, 0x32, 0x00};
    cr_assert_eq(
        bt_lokipush_decode(&p, BT_LOKIPUSH_PROTO, claim, sizeof(claim), 1 << 20, err, sizeof(err)),
        -E2BIG);
    unsigned seed = 7;
    char buf[300];
    for (int r = 0; r < 5000; r++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof(buf));
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)rand_r(&seed);
        int rc = bt_lokipush_decode(&p, r & 1 ? BT_LOKIPUSH_JSON : BT_LOKIPUSH_PROTO, buf, n,
                                    1 << 16, err, sizeof(err));
        if (rc == 0)
            bt_lokipush_free(&p);
    }
}

/* Found by fuzzing: seconds * 1e9 + nanos of a protobuf entry overflowed int64 (undefined); an
 * instant past int64 nanoseconds is now a malformed body, the largest one that fits is kept. */
Test(lokipush, protobuf_timestamp_past_int64_nanoseconds_is_refused)
{
    static const char huge[] = "\x19\x60\x0a\x17\x0a\x07\x7b\x61\x3d\x22\x62\x22\x7d\x12\x0c\x0a"
                               "\x07\x08\x80\xd0\xdb\xc3\xf4\x02\x12\x01\x78";
    static const char nanos_over[] = "\x1e\x74\x0a\x1c\x0a\x07\x7b\x61\x3d\x22\x62\x22\x7d\x12\x11"
                                     "\x0a\x0c\x08\x84\xfa\x85\xae\x22\x10\xff\x93\xeb\xdc\x03\x12"
                                     "\x01\x78";
    static const char max[] = "\x1e\x74\x0a\x1c\x0a\x07\x7b\x61\x3d\x22\x62\x22\x7d\x12\x11\x0a"
                              "\x0c\x08\x84\xfa\x85\xae\x22\x10\xff\xaf\xcb\x97\x03\x12\x01\x78";
    struct bt_lokipush p;
    char err[128] = "";
    cr_assert_eq(bt_lokipush_decode(&p, BT_LOKIPUSH_PROTO, huge, sizeof(huge) - 1, 1 << 20, err,
                                    sizeof(err)),
                 -EINVAL);
    cr_assert(strstr(err, "timestamp out of range"), "%s", err);
    cr_assert_eq(bt_lokipush_decode(&p, BT_LOKIPUSH_PROTO, nanos_over, sizeof(nanos_over) - 1,
                                    1 << 20, err, sizeof(err)),
                 -EINVAL);
    cr_assert_eq(
        bt_lokipush_decode(&p, BT_LOKIPUSH_PROTO, max, sizeof(max) - 1, 1 << 20, err, sizeof(err)),
        0, "%s", err);
    cr_assert_eq(p.n_entries, 1);
    cr_assert_eq(p.entries[0].ts_ns, INT64_MAX);
    cr_assert_eq(p.entries[0].line_len, 1);
    bt_lokipush_free(&p);
}
