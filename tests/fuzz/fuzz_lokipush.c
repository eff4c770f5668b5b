/*
 * The Loki push body decoder (util/lokipush.c), used by the loki_push_api receiver and the
 * test Loki server: the first byte picks the body's form, the rest is the body.
 *   0  as received: a snappy block of a PushRequest
 *   1  the same PushRequest bytes, snappy-compressed here so the fuzzer reaches the protobuf
 *      decoder and the label-string walker directly
 *   2  JSON
 *   3  gzip-compressed, as with Content-Encoding: gzip (util/inflate.c with the receiver's cap),
 *      then JSON
 * Every view must point inside what was decoded: each stream's entries and pairs in range.
 */
#include <snappy-c.h>

#include "fuzz_common.h"
#include "util/buf.h"
#include "util/inflate.h"
#include "util/lokipush.h"

#define MAX_RAW (1u << 20)

static int on_label(void *ctx, const char *name, size_t nl, const char *value, size_t vl)
{
    size_t *n = ctx;
    if (!nl)
        abort();
    (*n)++;
    return 0;
}

static void check(const struct bt_lokipush *p)
{
    for (size_t i = 0; i < p->n_streams; i++) {
        const struct bt_lp_stream *s = &p->streams[i];
        if (s->entry + s->n_entries > p->n_entries || s->entry > p->n_entries)
            abort();
        if (!s->labels && (s->lab + s->n_lab > p->n_kv || s->lab > p->n_kv))
            abort();
        if (s->labels) {
            char *scratch = malloc(s->labels_len ? s->labels_len : 1);
            size_t n = 0;
            if (!scratch)
                abort();
            (void)bt_lokipush_labels(s->labels, s->labels_len, scratch, on_label, &n);
            free(scratch);
        }
    }
    volatile unsigned char x = 0;
    for (size_t i = 0; i < p->n_entries; i++) {
        const struct bt_lp_entry *e = &p->entries[i];
        if (e->meta + e->n_meta > p->n_kv || e->meta > p->n_kv)
            abort();
        for (size_t k = 0; k < e->line_len; k++)
            x ^= (unsigned char)e->line[k];
    }
    for (size_t i = 0; i < p->n_kv; i++) {
        for (size_t k = 0; k < p->kv[i].name_len; k++)
            x ^= (unsigned char)p->kv[i].name[k];
        for (size_t k = 0; k < p->kv[i].value_len; k++)
            x ^= (unsigned char)p->kv[i].value[k];
    }
    (void)x;
}

static void decode(enum bt_lokipush_format fmt, const void *body, size_t n)
{
    struct bt_lokipush p;
    char err[256];
    int rc = bt_lokipush_decode(&p, fmt, body, n, MAX_RAW, err, sizeof(err));
    if (rc == 0)
        check(&p);
    else if (rc != -EINVAL && rc != -E2BIG && rc != -ENOMEM)
        abort();
    bt_lokipush_free(&p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] & 3;
    data++, size--;
    char *body = malloc(size ? size : 1);
    if (!body)
        abort();
    memcpy(body, data, size);
    if (mode == 0) {
        decode(BT_LOKIPUSH_PROTO, body, size);
    } else if (mode == 1) {
        size_t cn = snappy_max_compressed_length(size);
        char *c = malloc(cn);
        if (!c || snappy_compress(body, size, c, &cn) != SNAPPY_OK)
            abort();
        decode(BT_LOKIPUSH_PROTO, c, cn);
        free(c);
    } else if (mode == 2) {
        decode(BT_LOKIPUSH_JSON, body, size);
    } else {
        struct bt_buf out;
        bt_buf_init(&out, MAX_RAW);
        int rc = bt_inflate(body, size, BT_INFLATE_GZIP, MAX_RAW, &out);
        if (rc == 0)
            decode(BT_LOKIPUSH_JSON, out.ptr ? out.ptr : "", out.len);
        bt_buf_free(&out);
    }
    free(body);
    return 0;
}
