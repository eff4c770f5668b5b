/*
 * Syslog messages (util/syslog.c): each input is parsed as RFC 5424 and as RFC 3164; every
 * field of a parsed message must lie inside the input, and 5424 structured data is walked and
 * unescaped parameter by parameter.
 */
#include "fuzz_common.h"
#include "util/syslog.h"

static const char *lo, *hi;

static void in_range(struct bt_syslog_str s)
{
    if (s.p && (s.p < lo || s.p + s.n > hi))
        abort();
}

static void check(const struct bt_syslog_msg *m)
{
    if (m->facility < 0 || m->facility > 23 || m->severity < 0 || m->severity > 7)
        abort();
    if (!bt_syslog_severity_name(m->severity) || !bt_syslog_facility_name(m->facility))
        abort();
    in_range(m->hostname);
    in_range(m->app_name);
    in_range(m->proc_id);
    in_range(m->msg_id);
    in_range(m->sd);
    in_range(m->msg);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    lo = s, hi = s + size;
    struct bt_syslog_msg m;
    if (bt_syslog_parse_rfc5424(s, size, &m) == 0) {
        check(&m);
        if (m.version < 1)
            abort();
        size_t pos = 0, steps = 0;
        struct bt_syslog_str id = {0}, name, value;
        while (bt_syslog_sd_next(&m.sd, &pos, &id, &name, &value) == 1) {
            in_range(id);
            in_range(name);
            in_range(value);
            char *out = malloc(value.n ? value.n : 1);
            if (!out)
                abort();
            if (bt_syslog_sd_unescape(value.p, value.n, out) > value.n)
                abort();
            free(out);
            if (++steps > size)
                abort(); /* no progress */
        }
    }
    if (bt_syslog_parse_rfc3164(s, size, 1764400000000000000LL, &m) == 0) {
        check(&m);
        if (m.version != 0)
            abort();
    }
    free(s);
    return 0;
}
