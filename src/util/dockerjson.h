/*
 * dockerjson: one record of Docker's json-file log driver, decoded.
 *
 *   {"log":"hello \u003cworld\u003e\n","stream":"stdout","time":"2026-11-29T06:15:22.79211261Z"}
 *
 * A hand-written fast path handles the shape Docker writes (log, stream, time in that order,
 * no whitespace): it decodes every JSON escape of log into the caller's buffer, including
 * \uXXXX and surrogate pairs (a lone surrogate becomes U+FFFD, as Go's encoder would have
 * written it), and parses time without allocating. Any other shape (extra keys such as attrs,
 * other key order, whitespace) goes to jansson, which allocates, so only unusual records pay
 * for it. The decoded log bytes are exactly the bytes the container wrote, trailing \n included.
 */
#ifndef BT_UTIL_DOCKERJSON_H
#define BT_UTIL_DOCKERJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_buf;

struct bt_dockerjson {
    char stream[16]; /* "stdout", "stderr" or another short value; "" when absent */
    size_t stream_len;
    int64_t time_ns; /* valid when has_time */
    bool has_time;   /* time present and valid RFC3339 */
    bool slow;       /* decoded by the jansson fallback (tests, metrics) */
};

/* Decodes the record in rec[0..len) (a trailing \n or whitespace is allowed). The log value
 * replaces the content of log (whose cap bounds it). Returns 0, -EINVAL for a record that is not
 * a JSON object with a string "log" (the caller ships or drops it as raw), or -E2BIG when the
 * decoded log does not fit log's cap (log is then empty). */
int bt_dockerjson_parse(const char *rec, size_t len, struct bt_buf *log, struct bt_dockerjson *out);

/* Decodes the body of a JSON string (between the quotes, escapes included) and appends it to
 * out. Lone surrogates become U+FFFD. Returns 0, -EINVAL on a bad escape, or bt_buf's errors. */
int bt_dockerjson_unescape(const char *s, size_t n, struct bt_buf *out);

#endif
