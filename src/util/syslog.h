/*
 * syslog: pure parsers of one syslog message, RFC 5424 and RFC 3164 (the BSD format), for the
 * syslog receiver. No I/O, no allocation: every field of a parsed message points into the
 * caller's bytes and is valid as long as they are.
 *
 * RFC 5424 is parsed strictly (field lengths and characters as the RFC's grammar; structured
 * data validated as a whole, its parameter values still escaped: bt_syslog_sd_unescape). RFC
 * 3164 is what senders really write, so it is parsed leniently: "<PRI>", a "Mmm dd hh:mm:ss"
 * or RFC 3339 timestamp, a host name, "tag[pid]:" and the rest as the message; anything that
 * does not fit after the PRI is the message. A 3164 timestamp has no year and no zone: it is
 * read as UTC in the year that puts it closest to now (promtail reads it as UTC too).
 */
#ifndef BT_UTIL_SYSLOG_H
#define BT_UTIL_SYSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A field of a message: p == NULL when absent (or the NILVALUE "-"). */
struct bt_syslog_str {
    const char *p;
    size_t n;
};

struct bt_syslog_msg {
    int facility, severity; /* from PRI, 0..23 and 0..7 */
    int version;            /* RFC 5424 VERSION; 0 for an RFC 3164 message */
    bool has_ts;
    int64_t ts_ns; /* Unix nanoseconds when has_ts */
    struct bt_syslog_str hostname, app_name, proc_id, msg_id;
    struct bt_syslog_str sd;  /* RFC 5424 STRUCTURED-DATA as sent, validated */
    struct bt_syslog_str msg; /* MSG without a leading UTF-8 BOM; absent if nothing follows */
};

/* Parses exactly n bytes as an RFC 5424 message. 0, or -EINVAL (m is then undefined). */
int bt_syslog_parse_rfc5424(const char *s, size_t n, struct bt_syslog_msg *m);
/* Parses n bytes as an RFC 3164 message; now_ns picks the year of its timestamp. 0, or -EINVAL
 * when even the PRI is missing or invalid. */
int bt_syslog_parse_rfc3164(const char *s, size_t n, int64_t now_ns, struct bt_syslog_msg *m);

/* Walks the parameters of validated structured data (m->sd): returns 1 with the element's
 * SD-ID, the parameter's name and its raw (escaped) value; 0 at the end. *pos starts at 0;
 * pass the same *id on every call (it carries the current element's SD-ID). */
int bt_syslog_sd_next(const struct bt_syslog_str *sd, size_t *pos, struct bt_syslog_str *id,
                      struct bt_syslog_str *name, struct bt_syslog_str *value);
/* Writes the unescaped raw value (\" \\ \] become " \ ]) into out, which must have room for n
 * bytes. Returns the length written. */
size_t bt_syslog_sd_unescape(const char *raw, size_t n, char *out);

/* TCP framing (RFC 6587), decided per message by its first byte as a stream is read:
 * octet counting ("<count> <message>", count 1..9999999999) or, for anything else, a message
 * ended by '\n' (a '\r' before it is dropped). Empty lines and stray CR/NUL between messages are
 * skipped. A message longer than max_msg is dropped whole (an over-long count skips that many
 * bytes; an over-long line is discarded up to its '\n'), so the caller never needs more than
 * max_msg + BT_SYSLOG_FRAME_HDR bytes buffered. The state carries those drops across reads. */
#define BT_SYSLOG_FRAME_HDR 12 /* room for an octet count and its space */
struct bt_syslog_framer {
    uint64_t skip;   /* bytes of an over-long octet-counted message still to discard */
    bool discarding; /* in an over-long newline-framed message: discard to the newline */
};
enum bt_syslog_frame_rc {
    BT_SYSLOG_FRAME_MORE,     /* no whole message buffered: read more (at eof: the rest is gone) */
    BT_SYSLOG_FRAME_MSG,      /* *msg, *mlen: one message */
    BT_SYSLOG_FRAME_TOO_LONG, /* a message longer than max_msg is being dropped */
    BT_SYSLOG_FRAME_SKIP,     /* bytes between messages (or of a dropped one) consumed */
};
/* One step over the buffered bytes b[0, n); eof: nothing more will come. *used is the number of
 * bytes the step consumed (the message included), which the caller drops from its buffer;
 * after MORE it waits for more bytes, after anything else it calls again. */
enum bt_syslog_frame_rc bt_syslog_frame(struct bt_syslog_framer *f, const char *b, size_t n,
                                        bool eof, size_t max_msg, const char **msg, size_t *mlen,
                                        size_t *used);

/* promtail's names: "emergency" .. "debug", "kern" .. "local7"; NULL out of range. */
const char *bt_syslog_severity_name(int severity);
const char *bt_syslog_facility_name(int facility);

#endif
