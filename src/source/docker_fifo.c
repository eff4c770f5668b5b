/*
 * docker_fifo: Docker's FIFO frames to whole lines (see docker_fifo.h for the contract).
 *
 * Bytes are decoded straight from the caller's buffer when a whole frame is in it; only the cut
 * end of a read (a header, a frame, or the few bytes a resynchronisation needs to look at) is
 * copied into d->in and completed by the next feeds. protobuf-c unpacks each payload with an
 * allocator that bumps through one reusable arena, reset before every frame: nothing is freed
 * piecemeal and nothing is allocated once the arena has grown to the largest frame seen.
 *
 * Resynchronisation: after a length above max_frame, or a payload that is not a LogEntry, the
 * decoder slides one byte at a time until a plausible header: a length within bounds followed
 * by the source field (key 0x0a, a one-byte length of 1..32, that many printable bytes; Docker
 * always writes source first, "stdout" or "stderr"), or, for an entry without source, the
 * time field followed by the end of the frame or the key of a later field. The bytes slid over
 * are counted under the reason that started the slide.
 */
#include "source/docker_fifo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "logentry.pb-c.h"
#include "util/buf.h"

#define DEFAULT_MAX (1024 * 1024)
#define HDR 4
#define SRC_MAX 32               /* longest source string a resync accepts */
#define PEEK (HDR + 2 + SRC_MAX) /* bytes a plausibility check may need */
#define ARENA_MIN (16 * 1024)
#define ALIGN 16

/* A partial line being joined, one per stream. */
struct pending {
    bool active;
    bool discard; /* already emitted truncated: drop the rest of this id */
    bool legacy;  /* chunks without metadata: a whole line completes them */
    int64_t ts_ns;
    uint32_t chunks;
    struct bt_buf id;
    struct bt_buf text;
};

struct bt_dfifo {
    size_t max_frame, max_line;
    bt_dfifo_line_fn line;
    bt_dfifo_drop_fn drop;
    void *ctx;
    struct bt_buf in; /* bytes of an incomplete frame or resync window */
    bool resync;
    const char *resync_reason;
    uint64_t skipped; /* bytes slid over in the current resync, not yet reported */
    uint64_t frames;
    struct pending pend[3];
    /* protobuf-c arena */
    unsigned char *arena;
    size_t arena_cap, arena_used, arena_limit;
    bool arena_short;
    ProtobufCAllocator alloc;
};

static void *arena_alloc(void *data, size_t size)
{
    struct bt_dfifo *d = data;
    size_t n = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (n < size || n > d->arena_cap - d->arena_used) {
        d->arena_short = true;
        return NULL;
    }
    void *p = d->arena + d->arena_used;
    d->arena_used += n;
    return p;
}

static void arena_free(void *data, void *p)
{
    (void)data;
    (void)p; /* the arena is reset before the next frame */
}

/* Grows the arena to at least want bytes (within arena_limit). 0 or -ENOMEM/-E2BIG. */
static int arena_grow(struct bt_dfifo *d, size_t want)
{
    if (want <= d->arena_cap)
        return 0;
    if (want > d->arena_limit)
        want = d->arena_limit;
    if (want <= d->arena_cap)
        return -E2BIG;
    unsigned char *p = malloc(want);
    if (!p)
        return -ENOMEM;
    free(d->arena);
    d->arena = p;
    d->arena_cap = want;
    return 0;
}

struct bt_dfifo *bt_dfifo_new(const struct bt_dfifo_config *cfg, bt_dfifo_line_fn line,
                              bt_dfifo_drop_fn drop, void *ctx)
{
    if (!line) {
        errno = EINVAL;
        return NULL;
    }
    struct bt_dfifo *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->max_frame = cfg && cfg->max_frame ? cfg->max_frame : DEFAULT_MAX;
    d->max_line = cfg && cfg->max_line ? cfg->max_line : DEFAULT_MAX;
    if (d->max_frame > UINT32_MAX)
        d->max_frame = UINT32_MAX;
    d->line = line;
    d->drop = drop;
    d->ctx = ctx;
    /* room for a whole frame, plus the peek window a resync may add to a cut header */
    bt_buf_init(&d->in, d->max_frame + HDR + PEEK);
    for (int i = 0; i < 3; i++) {
        bt_buf_init(&d->pend[i].id, d->max_frame);
        bt_buf_init(&d->pend[i].text, d->max_line);
    }
    /* Unpacking copies the line and strings and adds a few structs: twice the frame is plenty
     * for anything Docker writes; a payload that needs more is refused as a bad frame. */
    d->arena_limit = 4 * d->max_frame + ARENA_MIN;
    d->alloc.alloc = arena_alloc;
    d->alloc.free = arena_free;
    d->alloc.allocator_data = d;
    return d;
}

void bt_dfifo_free(struct bt_dfifo *d)
{
    if (!d)
        return;
    bt_buf_free(&d->in);
    for (int i = 0; i < 3; i++) {
        bt_buf_free(&d->pend[i].id);
        bt_buf_free(&d->pend[i].text);
    }
    free(d->arena);
    free(d);
}

static void drop(struct bt_dfifo *d, const char *reason, uint64_t bytes)
{
    if (bytes && d->drop)
        d->drop(d->ctx, reason, bytes);
}

static void emit(struct bt_dfifo *d, enum bt_dstream s, int64_t ts, const char *p, size_t n,
                 bool unterminated, bool truncated, uint32_t chunks)
{
    struct bt_dfifo_line l = {.stream = s,
                              .ts_ns = ts,
                              .line = p ? p : "",
                              .len = n,
                              .unterminated = unterminated,
                              .truncated = truncated,
                              .chunks = chunks};
    d->line(d->ctx, &l);
}

static void pending_reset(struct pending *pd)
{
    pd->active = pd->discard = pd->legacy = false;
    pd->chunks = 0;
    bt_buf_reset(&pd->id);
    bt_buf_reset(&pd->text);
}

/* Emits what a stream holds as an unterminated line (nothing for a line already cut). */
static void pending_flush(struct bt_dfifo *d, enum bt_dstream s)
{
    struct pending *pd = &d->pend[s];
    if (pd->active && !pd->discard)
        emit(d, s, pd->ts_ns, pd->text.ptr, pd->text.len, true, false, pd->chunks);
    pending_reset(pd);
}

/* Adds a chunk to a stream's pending line; at max_line emits it truncated and drops the rest. */
static void pending_add(struct bt_dfifo *d, enum bt_dstream s, const uint8_t *p, size_t n)
{
    struct pending *pd = &d->pend[s];
    pd->chunks++;
    if (pd->discard) {
        drop(d, "line_too_long", n);
        return;
    }
    size_t room = d->max_line - pd->text.len;
    size_t take = n < room ? n : room;
    if (take && bt_buf_add(&pd->text, p, take) < 0) {
        /* out of memory: the buffer is gone, so is the line so far */
        drop(d, "line_too_long", pd->text.len + n);
        pd->discard = true;
        return;
    }
    if (take < n) {
        emit(d, s, pd->ts_ns, pd->text.ptr, pd->text.len, false, true, pd->chunks);
        drop(d, "line_too_long", n - take);
        pd->discard = true;
        bt_buf_reset(&pd->text);
    }
}

static bool same_id(const struct pending *pd, const char *id)
{
    size_t n = strlen(id);
    return n == pd->id.len && memcmp(pd->id.ptr ? pd->id.ptr : "", id, n) == 0;
}

static void whole_line(struct bt_dfifo *d, enum bt_dstream s, int64_t ts, const uint8_t *p,
                       size_t n, bool ends_partial)
{
    struct pending *pd = &d->pend[s];
    if (pd->active && pd->legacy && ends_partial) {
        /* Docker before partial metadata: the chunk that had the newline is not partial */
        pending_add(d, s, p, n);
        if (!pd->discard)
            emit(d, s, pd->ts_ns, pd->text.ptr, pd->text.len, false, false, pd->chunks);
        pending_reset(pd);
        return;
    }
    pending_flush(d, s);
    size_t take = n < d->max_line ? n : d->max_line;
    emit(d, s, ts, (const char *)p, take, false, take < n, 1);
    drop(d, "line_too_long", n - take);
}

static void partial_chunk(struct bt_dfifo *d, enum bt_dstream s, const Logdriver__LogEntry *e)
{
    struct pending *pd = &d->pend[s];
    const Logdriver__PartialLogEntryMetadata *m = e->partial_log_metadata;
    const char *id = m && m->id ? m->id : "";
    bool last = m && m->last;
    if (pd->active && (pd->legacy != !m || !same_id(pd, id)))
        pending_flush(d, s);
    if (!pd->active) {
        if (last) { /* a one-chunk line */
            whole_line(d, s, e->time_nano, e->line.data, e->line.len, false);
            return;
        }
        pd->active = true;
        pd->legacy = !m;
        pd->ts_ns = e->time_nano;
        if (bt_buf_adds(&pd->id, id) < 0)
            bt_buf_reset(&pd->id); /* an id we cannot keep never matches: chunks stand alone */
    }
    pending_add(d, s, e->line.data, e->line.len);
    if (last) {
        if (!pd->discard)
            emit(d, s, pd->ts_ns, pd->text.ptr, pd->text.len, false, false, pd->chunks);
        pending_reset(pd);
    }
}

static enum bt_dstream stream_of(const char *src)
{
    if (strcmp(src, "stdout") == 0)
        return BT_DSTREAM_STDOUT;
    if (strcmp(src, "stderr") == 0)
        return BT_DSTREAM_STDERR;
    return BT_DSTREAM_OTHER;
}

/* Unpacks one payload into the arena. NULL if it is not a LogEntry (or needs too much). */
static Logdriver__LogEntry *unpack(struct bt_dfifo *d, const uint8_t *p, size_t n)
{
    if (arena_grow(d, 2 * n + ARENA_MIN) == -ENOMEM && !d->arena)
        return NULL;
    for (;;) {
        d->arena_used = 0;
        d->arena_short = false;
        Logdriver__LogEntry *e = logdriver__log_entry__unpack(&d->alloc, n, p);
        if (e || !d->arena_short)
            return e;
        /* refused for room, not for content: grow and try again, up to the limit */
        if (d->arena_cap >= d->arena_limit || arena_grow(d, d->arena_cap * 2) < 0)
            return NULL;
    }
}

/* Decodes one payload. false if it is not a LogEntry. An empty payload is refused too: it has
 * not even the source Docker always writes, and accepting it would turn a run of zero bytes
 * into empty lines instead of a resync. */
static bool decode_frame(struct bt_dfifo *d, const uint8_t *p, size_t n)
{
    Logdriver__LogEntry *e = n ? unpack(d, p, n) : NULL;
    if (!e)
        return false;
    d->frames++;
    enum bt_dstream s = stream_of(e->source ? e->source : "");
    if (e->partial)
        partial_chunk(d, s, e);
    else
        whole_line(d, s, e->time_nano, e->line.data, e->line.len, true);
    return true;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

enum { NO, YES, MORE };

/* The source field: key 0x0a, a length of 1..SRC_MAX, that many printable bytes. */
static int plausible_source(const uint8_t *p, size_t n, uint32_t len)
{
    uint8_t slen = p[1];
    if (slen < 1 || slen > SRC_MAX || (uint32_t)slen + 2 > len)
        return NO;
    for (size_t i = 0; i < slen; i++) {
        if (2 + i >= n)
            return MORE;
        if (p[2 + i] < 0x20 || p[2 + i] > 0x7e)
            return NO;
    }
    return YES;
}

/* No source (an empty one is not written): key 0x10, a varint time, then the end of the frame
 * or the key of line, partial, metadata or attrs. */
static int plausible_time(const uint8_t *p, size_t n, uint32_t len)
{
    for (size_t i = 1; i <= 10 && i < len; i++) {
        if (i >= n)
            return MORE;
        if (p[i] & 0x80)
            continue;
        if (i + 1 == len)
            return YES;
        if (i + 1 >= n)
            return MORE;
        uint8_t k = p[i + 1];
        return k == 0x1a || k == 0x20 || k == 0x2a || k == 0x32 ? YES : NO;
    }
    return NO;
}

/* Whether a frame header plausibly starts at p (n bytes available): a length within bounds and
 * the first field Docker writes. */
static int plausible(const struct bt_dfifo *d, const uint8_t *p, size_t n)
{
    if (n < HDR)
        return MORE;
    uint32_t len = be32(p);
    if (len > d->max_frame || len < 2)
        return NO;
    if (n < HDR + 2)
        return MORE;
    if (p[HDR] == 0x0a)
        return plausible_source(p + HDR, n - HDR, len);
    if (p[HDR] == 0x10)
        return plausible_time(p + HDR, n - HDR, len);
    return NO;
}

static void resync_start(struct bt_dfifo *d, const char *reason)
{
    if (d->resync && d->resync_reason != reason) {
        drop(d, d->resync_reason, d->skipped);
        d->skipped = 0;
    }
    d->resync = true;
    d->resync_reason = reason;
}

static void resync_report(struct bt_dfifo *d)
{
    if (d->resync)
        drop(d, d->resync_reason, d->skipped);
    d->skipped = 0;
}

/* Decodes what it can of p[0..n); returns the bytes used (the rest must be kept). */
static size_t process(struct bt_dfifo *d, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        if (d->resync) {
            int r = plausible(d, p + off, n - off);
            if (r == MORE)
                return off;
            if (r == NO) {
                off++;
                d->skipped++;
                continue;
            }
            resync_report(d);
            d->resync = false;
        }
        if (n - off < HDR)
            return off;
        uint32_t len = be32(p + off);
        if (len > d->max_frame) {
            resync_start(d, "frame_too_large");
            continue;
        }
        if (n - off - HDR < len)
            return off;
        if (decode_frame(d, p + off + HDR, len)) {
            off += HDR + (size_t)len;
        } else {
            resync_start(d, "bad_frame");
            off++;
            d->skipped++;
        }
    }
    return off;
}

/* How many more bytes d->in needs before processing it can make progress. */
static size_t wanted(const struct bt_dfifo *d)
{
    if (d->resync)
        return PEEK;
    if (d->in.len < HDR)
        return HDR - d->in.len;
    uint32_t len = be32((const uint8_t *)d->in.ptr);
    if (len > d->max_frame)
        return 1;
    return HDR + (size_t)len - d->in.len;
}

/* Keeps the unused end of a buffer in d->in; a failure (out of memory) loses it, counted. */
static void keep(struct bt_dfifo *d, const uint8_t *p, size_t n)
{
    if (n && bt_buf_add(&d->in, p, n) < 0)
        drop(d, d->resync ? d->resync_reason : "truncated_frame", n);
}

void bt_dfifo_feed(struct bt_dfifo *d, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        if (d->in.len == 0) {
            size_t used = process(d, p, len);
            keep(d, p + used, len - used);
            break;
        }
        size_t take = wanted(d);
        if (take > len)
            take = len;
        size_t before = d->in.len;
        if (bt_buf_add(&d->in, p, take) < 0) {
            drop(d, "truncated_frame", before + take);
            p += take, len -= take;
            continue;
        }
        p += take, len -= take;
        size_t used = process(d, (const uint8_t *)d->in.ptr, d->in.len);
        if (used) {
            memmove(d->in.ptr, d->in.ptr + used, d->in.len - used);
            d->in.len -= used;
            d->in.ptr[d->in.len] = '\0';
        }
    }
    /* a long slide is reported as it goes, not only when it finds a frame */
    resync_report(d);
}

void bt_dfifo_flush(struct bt_dfifo *d)
{
    for (int s = 0; s < 3; s++) {
        struct pending *pd = &d->pend[s];
        if (pd->active && !pd->discard)
            pending_flush(d, (enum bt_dstream)s);
    }
}

/* At EOF nothing completes a cut frame. Its length may have been garbage hiding whole frames,
 * so the held bytes are slid over like a resync: frames found are decoded, the rest counted. */
static void drain_at_eof(struct bt_dfifo *d)
{
    while (d->in.len) {
        size_t used;
        if (!d->resync) {
            resync_start(d, "truncated_frame");
            d->skipped++;
            used = 1;
        } else {
            used = process(d, (const uint8_t *)d->in.ptr, d->in.len);
            if (!used && d->resync) {
                d->skipped += d->in.len;
                used = d->in.len;
            }
        }
        memmove(d->in.ptr, d->in.ptr + used, d->in.len - used);
        d->in.len -= used;
        d->in.ptr[d->in.len] = '\0';
    }
    resync_report(d);
    d->resync = false;
}

void bt_dfifo_eof(struct bt_dfifo *d)
{
    drain_at_eof(d);
    for (int s = 0; s < 3; s++)
        pending_flush(d, (enum bt_dstream)s);
}

uint64_t bt_dfifo_frames(const struct bt_dfifo *d)
{
    return d->frames;
}

size_t bt_dfifo_buffered(const struct bt_dfifo *d)
{
    size_t n = d->in.len;
    for (int s = 0; s < 3; s++)
        n += d->pend[s].text.len;
    return n;
}

static const char *source_name(enum bt_dstream s)
{
    switch (s) {
    case BT_DSTREAM_STDOUT: return "stdout";
    case BT_DSTREAM_STDERR: return "stderr";
    default: return "";
    }
}

int bt_dfifo_encode(struct bt_buf *out, enum bt_dstream stream, int64_t ts_ns, const char *line,
                    size_t len, bool partial, const char *partial_id, int32_t ordinal, bool last)
{
    Logdriver__LogEntry e = LOGDRIVER__LOG_ENTRY__INIT;
    Logdriver__PartialLogEntryMetadata m = LOGDRIVER__PARTIAL_LOG_ENTRY_METADATA__INIT;
    e.source = (char *)source_name(stream);
    e.time_nano = ts_ns;
    e.line.data = (uint8_t *)line;
    e.line.len = line ? len : 0;
    e.partial = partial;
    if (partial_id) {
        m.last = last;
        m.id = (char *)partial_id;
        m.ordinal = ordinal;
        e.partial_log_metadata = &m;
    }
    size_t n = logdriver__log_entry__get_packed_size(&e);
    if (n > UINT32_MAX)
        return -E2BIG;
    int rc = bt_buf_reserve(out, HDR + n);
    if (rc < 0)
        return rc;
    uint8_t *p = (uint8_t *)out->ptr + out->len;
    p[0] = (uint8_t)(n >> 24), p[1] = (uint8_t)(n >> 16), p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    logdriver__log_entry__pack(&e, p + HDR);
    out->len += HDR + n;
    out->ptr[out->len] = '\0';
    return 0;
}
