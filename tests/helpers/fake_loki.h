/*
 * fake_loki: a Loki-compatible push server on 127.0.0.1 for tests and benchmarks.
 *
 * POST /loki/api/v1/push (and /api/prom/push) is answered the way Loki answers: a missing
 * Content-Type is a 400, the body must be a snappy block of a logproto.PushRequest (decoded
 * with the project's own proto), and success is 204.
 *
 * What is STORED follows Loki (3.x defaults, each limit settable, see bt_fake_loki_limits):
 *   - labels: every stream's labels string must parse as {name="value", ...}; pairs with empty
 *     values are dropped; then at least one pair, at most max_label_names_per_series (15),
 *     names up to 1024 bytes, values up to 2048 bytes (unquoted), no name twice. A stream that
 *     fails is skipped whole, the others are kept, and the answer is a 400 with Loki's message;
 *   - line size: a line longer than max_line_size (256 KiB) is rejected (400 "Max entry size
 *     ...", the rest of the request is kept), or cut to that size with max_line_size_truncate;
 *   - out-of-order window (unordered_writes): within a stream (tenant + label set, as Loki
 *     keys it: sorted, empty values dropped) an entry older than the stream's newest stored
 *     timestamp minus max_chunk_age/2 (1 h) is rejected: 400 "entry with timestamp ...
 *     ignored, reason: 'entry too far behind ...'", the other entries are kept;
 *   - duplicates: an entry whose stream, timestamp and line equal an already stored entry's
 *     is dropped silently; the answer stays 204 (Loki's stream and head-block checks, which a
 *     query also applies across chunks).
 * Stored entries are recorded in memory (tenant from X-Scope-OrgID, labels as sent, timestamp,
 * line, structured metadata), compactly: one 32-byte record per entry plus its bytes in
 * append-only chunks, with labels and tenants interned. Counters keep what was RECEIVED
 * (decoded from processed requests) apart from what was STORED. In discard mode entries are
 * decoded, checked and counted but not kept; there the duplicate check only compares with the
 * stream's last stored entry (Loki's stream-level check), which needs no per-entry memory.
 *
 * Answers are scriptable: a queue of responses is consumed one per push request, then the
 * default status applies. A scripted 2xx response still decodes and stores by the rules above;
 * any other status is returned as is, without decoding. "hang" never answers until the server
 * is stopped or reset; "drop" closes the connection without an answer.
 *
 * Control endpoints on the same port, for tests written in other languages:
 *   POST /control/script   appends answers, comma-separated: "500x3,204", "hang", "drop",
 *                          "429:retry-after=2", "400:body=entry too old" (body runs to the
 *                          next comma), "500:delay=100", "delay=5000" (one answer with the
 *                          default status after 5 s); "xN" repeats an item N times
 *   POST /control/default?status=204&delay_ms=N   (either or both; delay_ms: every answer
 *                          without a scripted delay waits N ms first, as a slow Loki would)
 *   POST /control/limits?max_line_size=N&max_line_size_truncate=0|1&max_chunk_age_ms=N
 *                        &max_label_names_per_series=N&max_label_name_length=N
 *                        &max_label_value_length=N   (Loki's meanings: max_line_size=0 and
 *                          max_chunk_age_ms=0 mean unlimited; unnamed limits keep their value)
 *   POST /control/reset    clears stored entries, stream state, counters and script (not limits)
 *   GET  /control/dump     stored entries, JSON lines {"tenant","labels","ts","line","meta":{...}}
 *   GET  /control/stats    {"requests":..,"entries":..,"bytes":.. (stored),
 *                           "received_entries":..,"received_bytes":..,"duplicates":..,
 *                           "truncated":..,"max_concurrent":..,"rejected":{"invalid_labels":..,"line_too_long":..,
 *                           "too_far_behind":..},"by_status":{"204":..}}
 *
 * The server runs its own threads (one per connection); every accessor is thread-safe.
 */
#ifndef BT_TEST_FAKE_LOKI_H
#define BT_TEST_FAKE_LOKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_fake_loki;

/* Loki's limits that decide what is stored, with Loki's meanings. */
struct bt_fake_loki_limits {
    uint64_t max_line_size;              /* bytes, 0 = unlimited; Loki 3 default 256 KiB */
    bool max_line_size_truncate;         /* cut long lines instead of rejecting them */
    int64_t max_chunk_age_ns;            /* out-of-order window is half of it; 0 = no window */
    uint32_t max_label_names_per_series; /* 15; at most BT_FAKE_LOKI_MAX_LABELS */
    uint32_t max_label_name_length;      /* 1024 bytes */
    uint32_t max_label_value_length;     /* 2048 bytes, unquoted */
};

#define BT_FAKE_LOKI_MAX_LABELS 256

/* Loki's defaults (3.x): 256 KiB lines, 2 h chunk age (1 h window), 15 labels of 1024/2048. */
struct bt_fake_loki_limits bt_fake_loki_default_limits(void);

struct bt_fake_loki_opts {
    uint16_t port;                            /* 0 = ephemeral */
    bool discard;                             /* check and count but do not keep entries */
    bool quiet;                               /* no per-request log line on stderr */
    bool any_addr;                            /* every address, not only loopback */
    int delay_ms;                             /* every answer waits this long (0 = none) */
    const struct bt_fake_loki_limits *limits; /* NULL = Loki's defaults; copied */
};

/* One scripted answer. */
struct bt_fake_response {
    int status;        /* HTTP status, 0 = the default status; ignored for hang/drop */
    const char *body;  /* NULL: a Loki-like default for the status (copied) */
    int retry_after_s; /* >0: Retry-After header */
    int delay_ms;      /* wait before answering */
    bool hang;         /* never answer until stop/reset, then close */
    bool drop;         /* close the connection without answering */
};

/* A recorded entry. Pointers stay valid until bt_fake_loki_reset or stop. */
struct bt_fake_entry {
    const char *tenant; /* "" when the request had no X-Scope-OrgID */
    const char *labels; /* the labels string as sent */
    int64_t ts_ns;
    const char *line; /* NUL-terminated */
    size_t line_len;
    const char *meta; /* n_meta pairs, each "name\0value\0" */
    size_t n_meta;
};

/* Starts a server on 127.0.0.1 with default options and an ephemeral port. NULL on failure. */
struct bt_fake_loki *bt_fake_loki_start(void);
/* Starts a server with options. NULL with errno on failure. */
struct bt_fake_loki *bt_fake_loki_start_opts(const struct bt_fake_loki_opts *o);
/* Wakes hanging requests, stops the server and frees everything. NULL is ignored. */
void bt_fake_loki_stop(struct bt_fake_loki *f);
uint16_t bt_fake_loki_port(const struct bt_fake_loki *f);
/* "http://127.0.0.1:PORT/loki/api/v1/push"; valid for the server's lifetime. */
const char *bt_fake_loki_url(const struct bt_fake_loki *f);

/* Appends one scripted answer. 0 or -ENOMEM. */
int bt_fake_loki_script(struct bt_fake_loki *f, const struct bt_fake_response *r);
/* Appends answers from a spec like "500x3,204,429:retry-after=2,hang,drop,delay=50" (see
 * the control endpoints above). 0 or -EINVAL (nothing appended). */
int bt_fake_loki_script_spec(struct bt_fake_loki *f, const char *spec);
/* Status used when the script is empty (initially 204). */
void bt_fake_loki_set_default(struct bt_fake_loki *f, int status);
/* Delay before every answer whose script item names none (initially opts.delay_ms). */
void bt_fake_loki_set_delay(struct bt_fake_loki *f, int delay_ms);
/* The most push requests ever seen at once (arrived, not yet answered), since start or reset:
 * how many requests a client keeps in flight. */
size_t bt_fake_loki_max_concurrent(struct bt_fake_loki *f);
/* Replaces the limits for the following requests. */
void bt_fake_loki_set_limits(struct bt_fake_loki *f, const struct bt_fake_loki_limits *l);
/* Forgets entries, stream state, counters and script (not the limits); wakes hanging
 * requests. */
void bt_fake_loki_reset(struct bt_fake_loki *f);

/* Push requests received (all outcomes). */
size_t bt_fake_loki_requests(struct bt_fake_loki *f);
/* Push requests answered with status (0 = dropped connections). */
size_t bt_fake_loki_status_count(struct bt_fake_loki *f, int status);
/* Waits until at least n push requests arrived; 0, or -ETIMEDOUT after timeout_ms. */
int bt_fake_loki_wait_requests(struct bt_fake_loki *f, size_t n, int timeout_ms);
/* Waits until at least n entries were stored (or counted as stored in discard mode). */
int bt_fake_loki_wait_entries(struct bt_fake_loki *f, size_t n, int timeout_ms);

/* Entries stored so far (also counted in discard mode). */
size_t bt_fake_loki_entries(struct bt_fake_loki *f);
/* Line bytes stored so far (after truncation). */
uint64_t bt_fake_loki_bytes(struct bt_fake_loki *f);
/* Entries received: decoded from processed push requests, stored or not. */
size_t bt_fake_loki_received(struct bt_fake_loki *f);
/* Received entries dropped silently as duplicates of a stored entry. */
size_t bt_fake_loki_duplicates(struct bt_fake_loki *f);
/* Received entries rejected: reason "invalid_labels", "line_too_long" or "too_far_behind". */
size_t bt_fake_loki_rejected(struct bt_fake_loki *f, const char *reason);
/* Copies the i-th stored entry into out. 0 or -ENOENT. */
int bt_fake_loki_entry(struct bt_fake_loki *f, size_t i, struct bt_fake_entry *out);
/* Calls fn for each stored entry in arrival order, under the server lock. */
void bt_fake_loki_foreach(struct bt_fake_loki *f,
                          void (*fn)(void *ctx, const struct bt_fake_entry *e), void *ctx);
/* Number of stored entries whose line equals line exactly. */
size_t bt_fake_loki_find_line(struct bt_fake_loki *f, const char *line);
/* Number of stored entries pushed with tenant ("" = no header). */
size_t bt_fake_loki_tenant_count(struct bt_fake_loki *f, const char *tenant);
/* Copies the value of a header of the last push request (case-insensitive name) into out.
 * Returns 1 if present, 0 if absent. */
int bt_fake_loki_last_header(struct bt_fake_loki *f, const char *name, char *out, size_t outlen);
/* The value of structured-metadata name in e, or NULL. */
const char *bt_fake_entry_meta(const struct bt_fake_entry *e, const char *name);

/* Validates a labels string as Loki does, with Loki's default limits. 0, or -EINVAL with a
 * Loki-like message in err. */
int bt_fake_loki_check_labels(const char *s, char *err, size_t errlen);

#endif
