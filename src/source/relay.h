/*
 * relay: the durable queue between a receiver (syslog, the Loki push API) and the job's
 * pipeline. A receiver turns what a sender gave it into entries and puts them here; each entry
 * becomes one record of an on-disk spool (core/spool.h, the module the Docker plugin's spool
 * uses too). Only once bt_relay_flush has returned may the receiver tell the sender that it
 * has the entries (answer a push, read on from a TCP connection): from then on they survive
 * a crash of bpftail (the page cache keeps them; a power loss may cost the last seconds).
 *
 * The relay reads its spool back on the loop, in order, and hands each entry to the sink as a
 * one-record segment of an ack owner whose offsets are the spool's logical offsets; when the
 * committed offset moves (entries accepted by Loki or finally dropped), the spool commits it
 * and deletes the segment files behind it. After a restart the spool is read again from the
 * saved commit: at-least-once, nothing acknowledged to a sender lost.
 *
 * Bound: max_bytes of spool files. bt_relay_put refuses (-ENOSPC) an entry that would pass it,
 * and the receiver decides (429, stop reading, a counted UDP drop); when commits bring the
 * spool back under three quarters of the bound, the on_space callback tells it to go on. The
 * spool's own bound, which deletes the oldest data, is never reached. Loop thread only.
 */
#ifndef BT_SOURCE_RELAY_H
#define BT_SOURCE_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/entry.h"

struct bt_buf;
struct bt_loop;
struct bt_metrics;
struct bt_relay;

struct bt_relay_config {
    struct bt_loop *loop;
    struct bt_metrics *metrics; /* may be NULL */
    const char *job;            /* metrics label and logs */
    const char *dir;            /* the spool directory, created when missing */
    uint64_t max_bytes;         /* bound of the spool files (0 = 256 MiB) */
    bt_entry_sink_fn sink;      /* receives every entry read back (borrowed as in entry.h) */
    void *ctx;
    void (*on_space)(void *space_ctx); /* room again after a refused put; may be NULL */
    void *space_ctx;
};

/* Opens (and recovers) the spool and starts reading it back on the loop. cfg is copied
 * (strings too). NULL with a message in err. */
struct bt_relay *bt_relay_new(const struct bt_relay_config *cfg, char *err, size_t errlen);
/* Writes what is buffered, closes the spool (it stays on disk for the next run). Entries in
 * batches keep their segments; their commit is lost (they are read again). NULL is ignored. */
void bt_relay_free(struct bt_relay *r);

/* Appends e (labels with reserved ones such as __tenant_id__, timestamp, line, metadata;
 * e->seg is ignored). 0, -ENOSPC when the bound is reached, -EFBIG for an entry that can never
 * fit, -errno of a failed write. */
int bt_relay_put(struct bt_relay *r, const struct bt_entry *e);
/* Makes every put so far durable (one write). 0 or -errno. */
int bt_relay_flush(struct bt_relay *r);
/* True when an entry of len more bytes would be refused. */
bool bt_relay_full(const struct bt_relay *r, size_t len);

/* Backpressure of the pipeline: stop / go on reading the spool back (puts still work). */
void bt_relay_pause(struct bt_relay *r);
void bt_relay_resume(struct bt_relay *r);
/* Reads up to max records back now (tests). Number handed to the sink, or -errno. */
int bt_relay_drain(struct bt_relay *r, size_t max);

uint64_t bt_relay_bytes(const struct bt_relay *r);
uint64_t bt_relay_committed(const struct bt_relay *r);

/* Appends {"job","type","port","connections","queue_bytes","queue_committed","queue_end"}
 * (JSON, for /targets) to out. 0 or the buffer's error. */
int bt_relay_render(const struct bt_relay *r, const char *type, int port, long connections,
                    struct bt_buf *out);

/* What every receiver counts, in the agent's registry (m NULL: a NULL series, which counting
 * ignores). bpftail_<kind>_limit_hits_total{job,limit}: a limit for hostile senders was hit
 * (kind: syslog, gelf, push). bpftail_dropped_entries_total{reason}: entries lost for good. */
struct bt_series *bt_receiver_limit_counter(struct bt_metrics *m, const char *kind, const char *job,
                                            const char *limit);
struct bt_series *bt_receiver_drop_counter(struct bt_metrics *m, const char *reason);

/* The record encoding, exposed for tests: appends e to out (a bt_buf), 0 or -errno. */
int bt_relay_encode(struct bt_buf *out, const struct bt_entry *e);

#endif
