/*
 * batch: groups entries per tenant and stream until they are pushed to Loki.
 *
 * A struct bt_batcher belongs to one client and keeps one open batch per tenant and lane
 * (cfg.lanes, one by default; each stream stays in one lane while its timestamps are kept). Adding
 * an entry copies its line and metadata once into the batch's arena and takes one reference on the
 * entry's segment (coalesced per batch). A batch is sealed when adding a line would pass
 * batchsize bytes (line + metadata bytes, as promtail counts them) or when it is batchwait old;
 * sealed batches go to the ready callback, which takes ownership. Within a stream, entries are
 * sorted by timestamp (stable) when sealed, because Loki rejects or reorders them otherwise.
 *
 * Entry timestamps. Loki stores an entry only once per (stream, timestamp, line): a second
 * entry with the same three is dropped without an error (answer 204). Sources stamp every line
 * of one read with that read's time, and stages may give many entries one parsed time, so the
 * batcher (bt_batcher_add) re-stamps entries per stream, a stream being the tenant plus the
 * label set as sent (external labels merged). For each entry with timestamp t, with `in` and
 * `out` the timestamp the stream's previous entry came with and was sent with:
 *
 *     sent = out + 1   if in <= t <= out     (t equals or falls inside the previous run)
 *     sent = t         otherwise             (newer than anything sent, or older than `in`)
 *
 * So entries of one read (or with one parsed time) get t, t+1, t+2, ... ns, every entry of a
 * stream whose timestamps do not go backwards gets a distinct, strictly increasing timestamp,
 * and no timestamp moves by more than the number of entries sharing it (in ns). An entry older
 * than its predecessor's own timestamp keeps its timestamp: Loki 2.7+ accepts it (within
 * max_chunk_age/2 of the stream's newest entry) and moving it forward would misdate it.
 * Unlike Loki's increment_duplicate_timestamp, identical lines are bumped too: two equal lines
 * read from a file are two events. Limits: only the previous entry of the stream is compared,
 * so an explicit timestamp that comes back after an older one, or the same lines read again
 * with the same parsed times, may still repeat a triple (and Loki then keeps one). Retries
 * resend a sealed batch unchanged. The state is 3 integers per stream, kept across batches; a
 * stream without entries for 5 minutes is forgotten (checked once a minute by
 * bt_batcher_tick), and past 100,000 known streams, any idle for 10 s. See docs/timestamps.md.
 *
 * The batch layout is public so the encoder can walk it without copies. Loop thread only,
 * except that a sealed batch may be read (not changed) by a push thread.
 */
#ifndef BT_BATCH_H
#define BT_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/hmap.h"

struct bt_entry;
struct bt_labels;
struct bt_segment;

struct bt_batch_meta {
    size_t name_off, value_off; /* offsets into the arena */
    uint32_t name_len, value_len;
};

struct bt_batch_entry {
    int64_t ts_ns;
    size_t line_off; /* offset into the arena */
    uint32_t line_len;
    uint32_t n_meta;
    size_t meta_idx; /* first of n_meta in batch->meta */
};

struct bt_batch_stream {
    char *labels; /* canonical labels string, owned */
    size_t labels_len;
    struct bt_batch_entry *entries;
    size_t n, cap;
    int64_t last_ts;
    bool unsorted;
};

struct bt_segref {
    struct bt_segment *seg;
    uint32_t count;
};

/* What became of a pushed batch. */
enum bt_push_outcome {
    BT_PUSH_PENDING = 0, /* not yet decided */
    BT_PUSH_OK,          /* Loki accepted it: positions may advance */
    BT_PUSH_DROPPED,     /* final failure (4xx, retries exhausted): counted, positions advance */
    BT_PUSH_ABANDONED,   /* not sent (shutdown): positions must NOT advance */
};

struct bt_batch {
    char *tenant; /* "" for no X-Scope-OrgID */
    struct bt_batch_stream *streams;
    size_t n_streams, cap_streams;
    struct bt_hmap index; /* canonical labels -> stream index + 1 */
    struct bt_buf arena;
    struct bt_batch_meta *meta;
    size_t n_meta, cap_meta;
    size_t bytes; /* line + metadata bytes: the batchsize measure */
    size_t n_entries;
    uint64_t last_stamp; /* labels stamp (core/labels.h) of the last entry added, 0: none */
    size_t last_stream;  /* its stream's index */
    int64_t created_ns;  /* monotonic */
    struct bt_segref *refs;
    size_t n_refs, cap_refs;
    /* Filled by the client when the push is decided. */
    enum bt_push_outcome outcome;
    int status;         /* last HTTP status, -1 for a transport error, 0 if never sent */
    const char *reason; /* drop reason (static string) when DROPPED */
    uint32_t attempts;
    size_t encoded_bytes;
};

struct bt_batcher_config {
    size_t batchsize;                 /* bytes; default 1 MiB */
    int64_t batchwait_ns;             /* default 1 s */
    const char *tenant_id;            /* default tenant, may be NULL */
    const struct bt_labels *external; /* merged under entry labels, may be NULL */
    size_t max_streams;               /* 0 = unlimited; an entry that would pass it is dropped */
    /* Open batches per tenant (0 = 1). New streams take the lanes in turn and keep theirs
     * while remembered, so batches of different lanes share no stream and the client may push
     * them at once. */
    size_t lanes;
};

/* Takes ownership of a sealed batch. */
typedef void (*bt_batch_ready_fn)(void *ctx, struct bt_batch *b);
/* Told about an entry the batcher refused (reason static string), for counting. */
typedef void (*bt_batch_drop_fn)(void *ctx, const struct bt_entry *e, const char *reason);

struct bt_batcher;

/* NULL with errno on failure. The config's pointers are borrowed for the batcher's lifetime. */
struct bt_batcher *bt_batcher_new(const struct bt_batcher_config *cfg, bt_batch_ready_fn ready,
                                  bt_batch_drop_fn drop, void *ctx);
/* Seals nothing; frees open batches after releasing their segment references WITHOUT acking
 * (use bt_batcher_flush first to push them). */
void bt_batcher_free(struct bt_batcher *bb);
/* Adds a copy of e, with its timestamp re-stamped by the rule above. May seal the tenant's
 * batch first (ready called synchronously). 0, or -ENOMEM (entry not added). */
int bt_batcher_add(struct bt_batcher *bb, const struct bt_entry *e, int64_t now_mono);
/* Seals every batch at least batchwait old; forgets the timestamps of idle streams. */
void bt_batcher_tick(struct bt_batcher *bb, int64_t now_mono);
/* Monotonic time when the oldest open batch becomes due, or INT64_MAX. */
int64_t bt_batcher_deadline(const struct bt_batcher *bb);
/* Seals every open batch now. */
void bt_batcher_flush(struct bt_batcher *bb);
/* Bytes (line + metadata) held in open batches. */
size_t bt_batcher_bytes(const struct bt_batcher *bb);

/* Releases a decided batch: for OK and DROPPED, drops its segment references (which may
 * advance positions); for ABANDONED, abandons them (bt_segment_abandon: positions stop before
 * them, the owners are not kept alive). Then frees it. */
void bt_batch_release(struct bt_batch *b);
/* An empty batch for tenant (tests, encoder). NULL on ENOMEM. */
struct bt_batch *bt_batch_new(const char *tenant);
/* Adds an entry with explicit canonical labels (no external merge, no seal, no re-stamping).
 * 0 or -ENOMEM. */
int bt_batch_add_stamped(struct bt_batch *b, const char *canon, size_t canon_len, uint64_t hash,
                         uint64_t stamp, const struct bt_entry *e);
int bt_batch_add(struct bt_batch *b, const char *canon, size_t canon_len, uint64_t hash,
                 const struct bt_entry *e);
/* Sorts each stream by timestamp (stable). Called when a batch is sealed. */
void bt_batch_seal(struct bt_batch *b);

#endif
