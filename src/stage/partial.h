/*
 * partial: joins split log lines (Docker's 16 KiB json-file chunks, CRI "P" records) back into
 * one entry per stream, for the docker and cri stages.
 *
 * A stream is identified by the entry's label set (which holds filename and stream), so chunks
 * of different files and of stdout/stderr never mix. The first chunk of a line is copied (its
 * labels, metadata and timestamp are the joined entry's) and its segment gets one reference,
 * which holds the file's committed position back until the joined entry has gone on; later
 * chunks are appended to a per-stream buffer. The joined line is emitted, through the stages
 * after the owner, when the final chunk arrives, when it reaches max_size (split there, or
 * truncated and counted when truncate is set), when it has waited wait_ns, when more than
 * max_keys streams are pending (the oldest goes), or on flush. Bytes are never changed or
 * reordered. Loop thread only; the caller's stage owns the struct.
 */
#ifndef BT_PARTIAL_H
#define BT_PARTIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stage/stage.h"

struct bt_series;
struct bt_partial;

struct bt_partial_cfg {
    size_t max_size; /* bytes of one joined line (> 0) */
    size_t max_keys; /* streams with a pending line (> 0) */
    int64_t wait_ns; /* flush a pending line this long after its first chunk */
    bool truncate;   /* past max_size: drop the rest instead of splitting */
    bool latest_ts;  /* joined entry takes the last chunk's timestamp (CRI) */
    bool same_ts;    /* only chunks stamped with the first one's time belong to its line (Docker
                        stamps every chunk of a split line alike): another time ends it first */
    struct bt_series *splits;   /* counts lines split or truncated at max_size; may be NULL */
    struct bt_series *timeouts; /* counts lines flushed by wait_ns; may be NULL */
};

/* NULL with errno on failure. The config is copied. */
struct bt_partial *bt_partial_new(const struct bt_partial_cfg *cfg);
/* Releases pending lines without emitting them (their segment references are dropped, so
 * their bytes count as done). Call bt_partial_flush first to ship them. NULL is ignored. */
void bt_partial_free(struct bt_partial *p);
/* Number of streams with a pending line. */
size_t bt_partial_pending(const struct bt_partial *p);
/* Offers e, whose current line is one chunk; last says whether it ends the line. Returns
 * BT_STAGE_KEEP when e is a whole line with nothing pending for its stream (the caller lets it
 * go on unchanged), otherwise BT_STAGE_HELD: the chunk was taken, and anything completed was
 * emitted to out before returning. On ENOMEM the pending line is emitted as is. */
enum bt_stage_result bt_partial_add(struct bt_partial *p, struct bt_pentry *e, bool last,
                                    struct bt_stage_out *out);
/* Monotonic deadline of the oldest pending line, or INT64_MAX. */
int64_t bt_partial_deadline(const struct bt_partial *p);
/* Emits pending lines whose deadline is at or before now_mono. */
void bt_partial_tick(struct bt_partial *p, int64_t now_mono, struct bt_stage_out *out);
/* Emits every pending line. */
void bt_partial_flush(struct bt_partial *p, struct bt_stage_out *out);

/* Options the docker and cri stages share: drop_malformed, max_partial_line_size (default and
 * 0: 256 KiB), max_partial_line_size_truncate, max_partial_lines (100), max_wait_time (3s). */
#define BT_PARTIAL_DEFAULT_SIZE (256u * 1024)
#define BT_PARTIAL_DEFAULT_KEYS 100
#define BT_PARTIAL_DEFAULT_WAIT (3 * 1000000000LL)

struct bt_partial_opts {
    struct bt_partial_cfg cfg;
    bool drop_malformed;
    struct bt_series *malformed; /* bpftail_<stage>_malformed_records_total{job} */
};

struct bt_node;
/* Reads the options above from cfg (may be a NULL node). 0, or -EINVAL with err written. */
int bt_partial_parse_opts(const struct bt_node *cfg, const struct bt_stage_env *env,
                          struct bt_partial_opts *o, char *err, size_t errlen);
/* Looks up the stage's counters (nothing when env->metrics is NULL). */
void bt_partial_metrics(struct bt_partial_opts *o, const struct bt_stage_env *env,
                        const char *stage);

/* Label sets "source labels + stream=<s>" kept ready with their canonical string, so the
 * docker and cri stages do not copy and re-canonicalize the labels of every line. A few slots,
 * reused round-robin; lines come in runs from one file, so hits are the rule. */
#define BT_STREAM_CACHE_SLOTS 16
struct bt_stream_cache {
    struct {
        struct bt_labels base, set;
        char stream[16];
        size_t stream_len;
        bool used;
    } slot[BT_STREAM_CACHE_SLOTS];
    size_t next;
};
void bt_stream_cache_init(struct bt_stream_cache *c);
void bt_stream_cache_free(struct bt_stream_cache *c);
/* Sets e's stream label: e->labels then points at a cached set (valid until the cache is
 * freed; a stage that changes labels later copies it, as bt_pentry_labels_mut does) or, when e
 * already has labels of its own or the stream name is long, at e's own set. Also sets the
 * extracted "stream". 0 or -ENOMEM. */
int bt_stream_cache_apply(struct bt_stream_cache *c, struct bt_pentry *e, const char *stream,
                          size_t n);

/* What the docker and cri stages share: their options, the joiner and the stream label cache.
 * bt_join_stage_new parses the options, sets up counters named after the stage and takes the
 * joiner's timestamp rule from the caller (latest_ts for CRI, same_ts for Docker); the other
 * four functions are the stages' deadline/tick/flush/free ops as they are. */
struct bt_join_stage {
    struct bt_partial_opts o;
    struct bt_partial *p;
    struct bt_stream_cache sc;
};
/* NULL on error with err written (a bad option, or out of memory). */
struct bt_join_stage *bt_join_stage_new(const struct bt_node *cfg, const struct bt_stage_env *env,
                                        const char *stage, bool latest_ts, bool same_ts, char *err,
                                        size_t errlen);
int64_t bt_join_stage_deadline(const void *arg);
void bt_join_stage_tick(void *arg, int64_t now_mono, struct bt_stage_out *out);
void bt_join_stage_flush(void *arg, struct bt_stage_out *out);
void bt_join_stage_free(void *arg);

#endif
