/*
 * encode: batch -> logproto.PushRequest -> snappy block.
 *
 * The request is written by hand straight from the batch (stream labels and lines are read
 * where the batch keeps them), in the exact bytes protobuf-c would pack: fields in number
 * order, proto3 defaults (0, "") left out, every entry's timestamp present even when zero, as
 * Loki's own client sends it. A first pass computes every length, so each field's length
 * prefix is known when it is written and the whole request is written once, in one pass, into
 * memory sized exactly. protobuf-c stays the decoder of the tests and of util/lokipush.c.
 *
 * Loki's decoder (and protobuf-c's, which ends strings at a NUL) would cut a line at a NUL
 * byte; such bytes are replaced by a space in the copy, so the rest of the line still reaches
 * Loki with its length unchanged, as before this encoder wrote the bytes itself.
 *
 * bt_encode_push stages the uncompressed request in the tail of the output buffer, past the
 * room snappy may need, so a steady stream of batches reuses one buffer and allocates nothing.
 */
#include "push/encode.h"
#include "push/batch.h"
#include "util/buf.h"

#include <errno.h>
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Size of a length-delimited field of n payload bytes (tag byte included). */
static size_t field_len(size_t n)
{
    return 1 + varint_len(n) + n;
}

/* A string field, left out when empty (proto3 default). */
static size_t str_len(size_t n)
{
    return n ? field_len(n) : 0;
}

static void split_ts(int64_t ts_ns, int64_t *sec, int32_t *ns)
{
    int64_t s = ts_ns / 1000000000LL;
    int64_t n = ts_ns % 1000000000LL;
    if (n < 0) { /* floor division: nanos must be in [0, 1e9) */
        n += 1000000000LL;
        s -= 1;
    }
    *sec = s;
    *ns = (int32_t)n;
}

/* Payload of Timestamp {1: seconds, 2: nanos}; negative seconds take 10 bytes as int64. */
static size_t ts_payload(int64_t sec, int32_t ns)
{
    return (sec ? 1 + varint_len((uint64_t)sec) : 0) + (ns ? 1 + varint_len((uint64_t)ns) : 0);
}

static size_t meta_payload(const struct bt_batch_meta *m)
{
    return str_len(m->name_len) + str_len(m->value_len);
}

static size_t entry_payload(const struct bt_batch *b, const struct bt_batch_entry *e)
{
    int64_t sec;
    int32_t ns;
    split_ts(e->ts_ns, &sec, &ns);
    size_t n = field_len(ts_payload(sec, ns)) + str_len(e->line_len);
    for (uint32_t k = 0; k < e->n_meta; k++)
        n += field_len(meta_payload(&b->meta[e->meta_idx + k]));
    return n;
}

static size_t stream_payload(const struct bt_batch *b, const struct bt_batch_stream *s)
{
    size_t n = str_len(s->labels_len);
    for (size_t j = 0; j < s->n; j++)
        n += field_len(entry_payload(b, &s->entries[j]));
    return n;
}

/* Size of the request; slen[i] gets stream i's payload size. */
static size_t request_len(const struct bt_batch *b, size_t *slen)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n_streams; i++) {
        slen[i] = stream_payload(b, &b->streams[i]);
        n += field_len(slen[i]);
    }
    return n;
}

/* Writes a string field (tag, length, bytes with NULs made spaces); nothing when empty. */
static uint8_t *put_str(uint8_t *p, uint8_t tag, const char *src, size_t n)
{
    if (!n)
        return p;
    *p++ = tag;
    p = put_varint(p, n);
    memcpy(p, src, n);
    uint8_t *q = p, *end = p + n;
    while ((q = memchr(q, '\0', (size_t)(end - q))) != NULL)
        *q++ = ' ';
    return end;
}

static uint8_t *put_entry(uint8_t *p, const struct bt_batch *b, const struct bt_batch_entry *e)
{
    const char *arena = b->arena.ptr;
    int64_t sec;
    int32_t ns;
    split_ts(e->ts_ns, &sec, &ns);
    *p++ = 0x12; /* StreamAdapter.entries */
    p = put_varint(p, entry_payload(b, e));
    *p++ = 0x0a; /* EntryAdapter.timestamp, always present */
    p = put_varint(p, ts_payload(sec, ns));
    if (sec) {
        *p++ = 0x08;
        p = put_varint(p, (uint64_t)sec);
    }
    if (ns) {
        *p++ = 0x10;
        p = put_varint(p, (uint64_t)ns);
    }
    p = put_str(p, 0x12, arena + e->line_off, e->line_len);
    for (uint32_t k = 0; k < e->n_meta; k++) {
        const struct bt_batch_meta *m = &b->meta[e->meta_idx + k];
        *p++ = 0x1a; /* EntryAdapter.structuredMetadata */
        p = put_varint(p, meta_payload(m));
        p = put_str(p, 0x0a, arena + m->name_off, m->name_len);
        p = put_str(p, 0x12, arena + m->value_off, m->value_len);
    }
    return p;
}

/* Writes the request (exactly request_len(b) bytes) to p. Returns the end. */
static uint8_t *put_request(uint8_t *p, const struct bt_batch *b, const size_t *slen)
{
    for (size_t i = 0; i < b->n_streams; i++) {
        const struct bt_batch_stream *s = &b->streams[i];
        *p++ = 0x0a; /* PushRequest.streams */
        p = put_varint(p, slen[i]);
        p = put_str(p, 0x0a, s->labels, s->labels_len);
        for (size_t j = 0; j < s->n; j++)
            p = put_entry(p, b, &s->entries[j]);
    }
    return p;
}

int bt_encode_push_raw(const struct bt_batch *b, struct bt_buf *out)
{
    bt_buf_reset(out);
    size_t *slen = malloc((b->n_streams ? b->n_streams : 1) * sizeof(*slen));
    if (!slen)
        return -ENOMEM;
    size_t n = request_len(b, slen);
    int rc = bt_buf_reserve(out, n);
    if (rc)
        goto out;
    out->len = (size_t)(put_request((uint8_t *)out->ptr, b, slen) - (uint8_t *)out->ptr);
    out->ptr[out->len] = '\0';
out:
    free(slen);
    return rc;
}

int bt_encode_push(const struct bt_batch *b, struct bt_buf *out, size_t *raw_len)
{
    bt_buf_reset(out);
    size_t *slen = malloc((b->n_streams ? b->n_streams : 1) * sizeof(*slen));
    if (!slen)
        return -ENOMEM;
    size_t n = request_len(b, slen);
    size_t clen = snappy_max_compressed_length(n);
    char *raw = NULL, *own = NULL;
    int rc = 0;
    /* The request goes past snappy's room in out when out may grow that far (the usual case:
     * one buffer reused for every batch); else into memory of its own. */
    if (clen <= out->max && n <= out->max - clen && bt_buf_reserve(out, clen + n) == 0) {
        raw = out->ptr + clen;
    } else {
        rc = bt_buf_reserve(out, clen);
        if (rc)
            goto out;
        raw = own = malloc(n ? n : 1);
        if (!raw) {
            rc = -ENOMEM;
            goto out;
        }
    }
    size_t len = (size_t)(put_request((uint8_t *)raw, b, slen) - (uint8_t *)raw);
    if (snappy_compress(raw, len, out->ptr, &clen) != SNAPPY_OK) {
        rc = -ENOMEM;
        goto out;
    }
    out->len = clen;
    out->ptr[out->len] = '\0';
    if (raw_len)
        *raw_len = len;
out:
    free(own);
    free(slen);
    return rc;
}
