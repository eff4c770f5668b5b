/*
 * entry: one log line on its way from a source to Loki.
 *
 * Everything in an entry is borrowed for the duration of the call that receives it: the line
 * bytes, the labels and the structured metadata belong to the source or to the pipeline stage
 * that produced them. Whoever keeps an entry beyond the call copies the bytes and takes a
 * reference on its segment (ack.h); the batcher does exactly that.
 */
#ifndef BT_ENTRY_H
#define BT_ENTRY_H

#include <stddef.h>
#include <stdint.h>

struct bt_labels;
struct bt_segment;

/* A structured-metadata pair (Loki EntryAdapter.structuredMetadata). */
struct bt_kv {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct bt_entry {
    struct bt_labels *labels; /* stream labels incl. reserved "__" ones (e.g. __tenant_id__) */
    int64_t ts_ns;            /* Unix nanoseconds */
    const char *line;
    size_t line_len;
    const struct bt_kv *meta; /* structured metadata, n_meta pairs */
    size_t n_meta;
    struct bt_segment *seg; /* ack handle, NULL for entries that need no acknowledgement */
};

/* Receives finished entries (after the pipeline). Borrowed as described above. */
typedef void (*bt_entry_sink_fn)(void *ctx, const struct bt_entry *e);

/* The reserved label a tenant stage sets; the batcher uses it as X-Scope-OrgID. */
#define BT_TENANT_LABEL "__tenant_id__"

#endif
