/*
 * encode: batch -> logproto.PushRequest -> snappy block.
 *
 * The protobuf-c message tree for a whole batch lives in one allocation: the stream, entry,
 * timestamp and metadata structs, their pointer arrays, and NUL-terminated copies of every
 * line and metadata string (protobuf-c packs strings with strlen, and the batch arena stores
 * them back to back without terminators). The stream labels are already NUL-terminated in the
 * batch and are borrowed.
 *
 * Because protobuf-c strings end at the first NUL, a NUL byte inside a line or metadata value
 * would silently cut it short on the wire. Such bytes are replaced by a space in the copy, so
 * the rest of the line still reaches Loki with its length unchanged.
 */
#include "push/encode.h"
#include "push/batch.h"
#include "util/buf.h"

#include "push.pb-c.h"

#include <errno.h>
#include <snappy-c.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

/* Everything one batch's message tree needs, carved out of a single block. */
struct tree {
    void *block;
    Logproto__PushRequest req;
};

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

/* Copies n bytes to dst, NUL-terminates, and replaces inner NULs (see the file comment). */
static char *copy_str(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n);
    dst[n] = '\0';
    char *p = dst;
    while ((p = memchr(p, '\0', (size_t)(dst + n - p))) != NULL)
        *p++ = ' ';
    return dst;
}

static void set_ts(Logproto__Timestamp *t, int64_t ts_ns)
{
    int64_t sec = ts_ns / 1000000000LL;
    int64_t ns = ts_ns % 1000000000LL;
    if (ns < 0) { /* floor division: nanos must be in [0, 1e9) */
        ns += 1000000000LL;
        sec -= 1;
    }
    logproto__timestamp__init(t);
    t->seconds = sec;
    t->nanos = (int32_t)ns;
}

/* Byte offsets of each array inside the tree's single block. */
struct layout {
    size_t sp, s, ep, e, t, mp, m, str, total;
};

static void plan(const struct bt_batch *b, struct layout *l)
{
    size_t ns = b->n_streams, ne = 0, nm = 0;
    for (size_t i = 0; i < ns; i++) {
        ne += b->streams[i].n;
        for (size_t j = 0; j < b->streams[i].n; j++)
            nm += b->streams[i].entries[j].n_meta;
    }
    size_t al = alignof(max_align_t);
    l->sp = 0;
    l->s = align_up(l->sp + ns * sizeof(Logproto__StreamAdapter *), al);
    l->ep = align_up(l->s + ns * sizeof(Logproto__StreamAdapter), al);
    l->e = align_up(l->ep + ne * sizeof(Logproto__EntryAdapter *), al);
    l->t = align_up(l->e + ne * sizeof(Logproto__EntryAdapter), al);
    l->mp = align_up(l->t + ne * sizeof(Logproto__Timestamp), al);
    l->m = align_up(l->mp + nm * sizeof(Logproto__LabelPairAdapter *), al);
    l->str = align_up(l->m + nm * sizeof(Logproto__LabelPairAdapter), al);
    /* Every line and metadata string once more, each with its NUL. */
    l->total = l->str + b->arena.len + ne + 2 * nm + 1;
}

/* Builds the message tree for b. 0 or -ENOMEM. */
static int build_tree(const struct bt_batch *b, struct tree *t)
{
    struct layout l;
    plan(b, &l);
    size_t ns = b->n_streams;
    char *blk = malloc(l.total);
    if (!blk)
        return -ENOMEM;
    t->block = blk;
    Logproto__StreamAdapter **sp = (Logproto__StreamAdapter **)(void *)(blk + l.sp);
    Logproto__StreamAdapter *sa = (Logproto__StreamAdapter *)(void *)(blk + l.s);
    Logproto__EntryAdapter **ep = (Logproto__EntryAdapter **)(void *)(blk + l.ep);
    Logproto__EntryAdapter *ea = (Logproto__EntryAdapter *)(void *)(blk + l.e);
    Logproto__Timestamp *ta = (Logproto__Timestamp *)(void *)(blk + l.t);
    Logproto__LabelPairAdapter **mp = (Logproto__LabelPairAdapter **)(void *)(blk + l.mp);
    Logproto__LabelPairAdapter *ma = (Logproto__LabelPairAdapter *)(void *)(blk + l.m);
    char *str = blk + l.str;
    const char *arena = b->arena.ptr;

    logproto__push_request__init(&t->req);
    t->req.n_streams = ns;
    t->req.streams = ns ? sp : NULL;
    size_t ei = 0, mi = 0;
    for (size_t i = 0; i < ns; i++) {
        const struct bt_batch_stream *s = &b->streams[i];
        Logproto__StreamAdapter *so = &sa[i];
        logproto__stream_adapter__init(so);
        sp[i] = so;
        so->labels = s->labels;
        so->n_entries = s->n;
        so->entries = s->n ? &ep[ei] : NULL;
        for (size_t j = 0; j < s->n; j++, ei++) {
            const struct bt_batch_entry *be = &s->entries[j];
            Logproto__EntryAdapter *eo = &ea[ei];
            logproto__entry_adapter__init(eo);
            ep[ei] = eo;
            set_ts(&ta[ei], be->ts_ns);
            eo->timestamp = &ta[ei]; /* always present, as Loki's own client sends it */
            eo->line = copy_str(str, arena + be->line_off, be->line_len);
            str += be->line_len + 1;
            eo->n_structuredmetadata = be->n_meta;
            eo->structuredmetadata = be->n_meta ? &mp[mi] : NULL;
            for (uint32_t k = 0; k < be->n_meta; k++, mi++) {
                const struct bt_batch_meta *m = &b->meta[be->meta_idx + k];
                Logproto__LabelPairAdapter *mo = &ma[mi];
                logproto__label_pair_adapter__init(mo);
                mp[mi] = mo;
                mo->name = copy_str(str, arena + m->name_off, m->name_len);
                str += m->name_len + 1;
                mo->value = copy_str(str, arena + m->value_off, m->value_len);
                str += m->value_len + 1;
            }
        }
    }
    return 0;
}

int bt_encode_push_raw(const struct bt_batch *b, struct bt_buf *out)
{
    struct tree t = {0};
    bt_buf_reset(out);
    int rc = build_tree(b, &t);
    if (rc)
        goto out;
    size_t n = logproto__push_request__get_packed_size(&t.req);
    rc = bt_buf_reserve(out, n);
    if (rc)
        goto out;
    out->len = logproto__push_request__pack(&t.req, (uint8_t *)out->ptr);
    out->ptr[out->len] = '\0';
out:
    free(t.block);
    return rc;
}

int bt_encode_push(const struct bt_batch *b, struct bt_buf *out, size_t *raw_len)
{
    struct tree t = {0};
    uint8_t *raw = NULL;
    bt_buf_reset(out);
    int rc = build_tree(b, &t);
    if (rc)
        goto out;
    size_t n = logproto__push_request__get_packed_size(&t.req);
    raw = malloc(n ? n : 1);
    if (!raw) {
        rc = -ENOMEM;
        goto out;
    }
    n = logproto__push_request__pack(&t.req, raw);
    free(t.block); /* the tree is no longer needed; give memory back before compressing */
    t.block = NULL;
    size_t clen = snappy_max_compressed_length(n);
    rc = bt_buf_reserve(out, clen);
    if (rc)
        goto out;
    if (snappy_compress((const char *)raw, n, out->ptr, &clen) != SNAPPY_OK) {
        rc = -ENOMEM;
        goto out;
    }
    out->len = clen;
    out->ptr[out->len] = '\0';
    if (raw_len)
        *raw_len = n;
out:
    free(raw);
    free(t.block);
    return rc;
}
