/*
 * fake_loki: a Loki-compatible push server on 127.0.0.1 for tests and benchmarks.
 *
 * POST /loki/api/v1/push (and /api/prom/push) is answered the way Loki answers: a missing
 * Content-Type is a 400, the body must be a snappy block of a logproto.PushRequest (decoded
 * with the project's own proto), every stream's labels string must parse as {name="value", ...}
 * with at least one non-empty pair, and success is 204. Accepted entries are recorded in memory
 * (tenant from X-Scope-OrgID, labels, timestamp, line, structured metadata), compactly: one
 * 32-byte record per entry plus its bytes in append-only chunks, with labels and tenants
 * interned. In discard mode entries are decoded and counted but not stored.
 *
 * Answers are scriptable: a queue of responses is consumed one per push request, then the
 * default status applies. A scripted 2xx response still decodes and records; any other status
 * is returned as is, without recording. "hang" never answers until the server is stopped or
 * reset; "drop" closes the connection without an answer.
 *
 * Control endpoints on the same port, for tests written in other languages:
 *   POST /control/script   appends answers, comma-separated: "500x3,204", "hang", "drop",
 *                          "429:retry-after=2", "400:body=entry too old" (body runs to the
 *                          next comma), "500:delay=100", "delay=5000" (one answer with the
 *                          default status after 5 s); "xN" repeats an item N times
 *   POST /control/default?status=204
 *   POST /control/reset    clears recorded entries, counters and script
 *   GET  /control/dump     JSON lines {"tenant","labels","ts","line","meta":{...}}
 *   GET  /control/stats    {"requests":..,"entries":..,"bytes":..,"by_status":{"204":..}}
 *
 * The server runs its own threads (one per connection); every accessor is thread-safe.
 */
#ifndef BT_TEST_FAKE_LOKI_H
#define BT_TEST_FAKE_LOKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_fake_loki;

struct bt_fake_loki_opts {
    uint16_t port; /* 0 = ephemeral */
    bool discard;  /* count but do not store entries */
    bool quiet;    /* no per-request log line on stderr */
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
/* Forgets entries, counters and script; wakes hanging requests. */
void bt_fake_loki_reset(struct bt_fake_loki *f);

/* Push requests received (all outcomes). */
size_t bt_fake_loki_requests(struct bt_fake_loki *f);
/* Push requests answered with status (0 = dropped connections). */
size_t bt_fake_loki_status_count(struct bt_fake_loki *f, int status);
/* Waits until at least n push requests arrived; 0, or -ETIMEDOUT after timeout_ms. */
int bt_fake_loki_wait_requests(struct bt_fake_loki *f, size_t n, int timeout_ms);
/* Waits until at least n entries were recorded (or counted in discard mode). */
int bt_fake_loki_wait_entries(struct bt_fake_loki *f, size_t n, int timeout_ms);

/* Entries accepted so far (also counted in discard mode). */
size_t bt_fake_loki_entries(struct bt_fake_loki *f);
/* Line bytes accepted so far. */
uint64_t bt_fake_loki_bytes(struct bt_fake_loki *f);
/* Copies the i-th recorded entry into out. 0 or -ENOENT. */
int bt_fake_loki_entry(struct bt_fake_loki *f, size_t i, struct bt_fake_entry *out);
/* Calls fn for each recorded entry in arrival order, under the server lock. */
void bt_fake_loki_foreach(struct bt_fake_loki *f,
                          void (*fn)(void *ctx, const struct bt_fake_entry *e), void *ctx);
/* Number of recorded entries whose line equals line exactly. */
size_t bt_fake_loki_find_line(struct bt_fake_loki *f, const char *line);
/* Number of recorded entries pushed with tenant ("" = no header). */
size_t bt_fake_loki_tenant_count(struct bt_fake_loki *f, const char *tenant);
/* Copies the value of a header of the last push request (case-insensitive name) into out.
 * Returns 1 if present, 0 if absent. */
int bt_fake_loki_last_header(struct bt_fake_loki *f, const char *name, char *out, size_t outlen);
/* The value of structured-metadata name in e, or NULL. */
const char *bt_fake_entry_meta(const struct bt_fake_entry *e, const char *name);

/* Validates a labels string as Loki does. 0, or -EINVAL with a Loki-like message in err. */
int bt_fake_loki_check_labels(const char *s, char *err, size_t errlen);

#endif
