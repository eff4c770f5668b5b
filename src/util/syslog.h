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

/* promtail's names: "emergency" .. "debug", "kern" .. "local7"; NULL out of range. */
const char *bt_syslog_severity_name(int severity);
const char *bt_syslog_facility_name(int facility);

#endif
