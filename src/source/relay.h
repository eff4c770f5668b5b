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
struct bt_node;
struct bt_relabel;
struct bt_relay;
struct bt_resolver;

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

/* ---- what the receivers (syslog, gelf, loki_push_api) share ----
 *
 * The agent builds each receiver job from the same env and drives all of them the same way
 * through a struct bt_receiver, the first member of every receiver's state: it pauses and
 * resumes the relay (backpressure of the pipeline), renders it for /targets, frees it. */

struct bt_receiver_env {
    struct bt_loop *loop;         /* NULL: parse the config only (-check-syntax) */
    struct bt_metrics *metrics;   /* may be NULL */
    struct bt_relabel *relabel;   /* borrowed, may be NULL */
    struct bt_resolver *resolver; /* syslog's reverse DNS: borrowed, may be NULL */
    const char *job;
    bt_entry_sink_fn sink; /* receives the entries read back from the queue */
    void *ctx;
    const char *queue_dir; /* this job's durable queue directory */
    uint64_t queue_bytes;  /* its bound (0 = the relay's default) */
};

struct bt_receiver;
struct bt_receiver_ops {
    const char *type; /* the scrape config's key, and the type on /targets */
    const char *kind; /* short name: queue directories, bpftail_<kind>_limit_hits_total */
    /* Reads the receiver's block and, with env->loop, opens its relay and listens. NULL with
     * a message in err. env is copied, its strings borrowed for the call. */
    struct bt_receiver *(*open)(const struct bt_node *cfg, const struct bt_receiver_env *env,
                                char *err, size_t errlen);
    void (*free)(struct bt_receiver *r); /* closes the listener; the queue stays on disk */
    int (*port)(const struct bt_receiver *r);
    long (*connections)(const struct bt_receiver *r); /* open connections, -1: not counted */
};

struct bt_receiver {
    const struct bt_receiver_ops *ops;
    struct bt_relay *relay; /* NULL when only the config was read */
};

/* The relay of a receiver built from env (on_space may be NULL). NULL with a message in err. */
struct bt_relay *bt_receiver_relay_new(const struct bt_receiver_env *env,
                                       void (*on_space)(void *space_ctx), void *space_ctx,
                                       char *err, size_t errlen);
/* NULL is ignored. */
void bt_receiver_free(struct bt_receiver *r);
/* Backpressure of the pipeline: the queue stops / goes on being read (reception goes on). */
void bt_receiver_pause(struct bt_receiver *r);
void bt_receiver_resume(struct bt_receiver *r);
/* Appends the receiver's JSON object for /targets (bt_relay_render). 0 or the buffer's error. */
int bt_receiver_render(const struct bt_receiver *r, struct bt_buf *out);

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
