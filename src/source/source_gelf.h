/*
 * source_gelf: promtail's `gelf` scrape config, a GELF receiver on UDP (what Docker's `gelf`
 * log driver sends), in the event loop.
 *
 * Config (the scrape job's `gelf:` block, promtail's keys):
 *   listen_address: ":12201"     host:port (no host: all addresses)
 *   labels: {job: gelf}          static labels
 *   use_incoming_timestamp: false  the message's `timestamp`, else the time of reception
 *   max_message_bytes: 1MiB      bpftail's: a message larger than this, reassembled or after
 *                                decompression, is dropped (counted)
 *   max_pending: 1000            bpftail's: chunked messages being reassembled at once
 * A datagram is one GELF message: JSON, gzip or zlib compressed JSON, or one chunk of a
 * chunked message (magic 0x1e 0x0f, 8-byte id, sequence number, count up to 128), reassembled
 * in any order; a message whose chunks do not all arrive within 5 s is dropped (counted), as is
 * the oldest pending one past max_pending. The line is the message's JSON as received
 * (promtail writes it again with Go's encoder: the same fields, possibly another order).
 * Labels for relabel_configs: __gelf_message_level (emergency .. debug), __gelf_message_host,
 * __gelf_message_version, __gelf_message_facility.
 *
 * Delivery: through the job's durable queue (source/relay.h); a message that finds the queue
 * full is dropped and counted (UDP cannot be held back). Metrics:
 * bpftail_gelf_target_entries_total, bpftail_gelf_target_chunked_messages_total,
 * bpftail_gelf_target_parsing_errors_total, and
 * bpftail_dropped_entries_total{reason="gelf_incomplete"|"gelf_too_large"|"relay_full"}.
 * Loop thread only.
 */
#ifndef BT_SOURCE_GELF_H
#define BT_SOURCE_GELF_H

#include <stddef.h>
#include <stdint.h>

#include "core/entry.h"

struct bt_buf;
struct bt_loop;
struct bt_metrics;
struct bt_node;
struct bt_relabel;
struct bt_gelf;

struct bt_gelf_env {
    struct bt_loop *loop;       /* NULL: parse the config only */
    struct bt_metrics *metrics; /* may be NULL */
    struct bt_relabel *relabel; /* borrowed, may be NULL */
    const char *job;
    bt_entry_sink_fn sink;
    void *ctx;
    const char *queue_dir;
    uint64_t queue_bytes;
};

/* Reads the block and, with a loop, binds the socket and opens the queue. NULL on error with a
 * message in err. env is copied. */
struct bt_gelf *bt_gelf_new(const struct bt_node *cfg, const struct bt_gelf_env *env, char *err,
                            size_t errlen);
void bt_gelf_free(struct bt_gelf *g);
void bt_gelf_pause(struct bt_gelf *g);
void bt_gelf_resume(struct bt_gelf *g);
int bt_gelf_port(const struct bt_gelf *g);

/* Handles one datagram of n bytes as if it had arrived on the socket (what the receiver does
 * with each; tests and the fuzz target call it directly): a chunk, or a whole message. A
 * receiver made without a loop has no queue: only with one. */
void bt_gelf_datagram(struct bt_gelf *g, const void *data, size_t n);

/* Appends this receiver's JSON object for /targets (relay.h). 0 or the buffer's error. */
int bt_gelf_render(const struct bt_gelf *g, struct bt_buf *out);

#endif
