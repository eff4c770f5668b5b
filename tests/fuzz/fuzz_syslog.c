/*
 * Syslog (util/syslog.c): TCP framing and the message parsers. The input after its first byte
 * is a TCP stream, framed (octet counting or newline, a small max_msg so the drop paths are
 * reached) the way the receiver's connections do it: reads of at most max_msg + header bytes
 * into a buffer of that size, whose unframed rest must always leave room for the next read.
 * It is framed twice, with reads as large as fit and with small reads (size from the first
 * byte): both must give the same messages and drops. Each message is parsed as RFC 5424 and
 * as RFC 3164; every field of a parsed message must lie inside it, and 5424 structured data is
 * walked and unescaped parameter by parameter. The whole input is parsed as one message too.
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

static void parse(const uint8_t *data, size_t size)
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
}

#define MAX_MSG 64
#define CAP (MAX_MSG + BT_SYSLOG_FRAME_HDR)

struct framed {
    uint64_t hash, msgs, too_long;
};

/* Feeds the stream in reads of at most step bytes, as conn_run does. */
static void frame(const uint8_t *data, size_t size, size_t step, bool parse_msgs,
                  struct framed *out)
{
    char buf[CAP];
    size_t len = 0, off = 0;
    bool eof = false;
    struct bt_syslog_framer fr = {0};
    out->hash = 14695981039346656037ull;
    for (;;) {
        size_t used, mlen, pos = 0;
        const char *msg;
        while (pos < len) {
            enum bt_syslog_frame_rc k =
                bt_syslog_frame(&fr, buf + pos, len - pos, eof, MAX_MSG, &msg, &mlen, &used);
            if (used > len - pos)
                abort();
            if (k == BT_SYSLOG_FRAME_MSG) {
                if (mlen > MAX_MSG || msg < buf + pos || msg + mlen > buf + pos + used)
                    abort();
                for (size_t i = 0; i < mlen; i++)
                    out->hash = (out->hash ^ (unsigned char)msg[i]) * 0x100000001b3ull;
                out->hash = (out->hash ^ 0x100) * 0x100000001b3ull;
                out->msgs++;
                if (parse_msgs)
                    parse((const uint8_t *)msg, mlen);
            } else if (k == BT_SYSLOG_FRAME_TOO_LONG) {
                out->too_long++;
            } else if (k == BT_SYSLOG_FRAME_SKIP && used == 0) {
                abort(); /* no progress */
            }
            pos += used;
            if (k == BT_SYSLOG_FRAME_MORE)
                break;
        }
        memmove(buf, buf + pos, len - pos);
        len -= pos;
        if (eof)
            break;
        /* The receiver closes a connection whose buffer is full after framing. */
        if (len >= CAP)
            abort();
        size_t n = CAP - len < step ? CAP - len : step;
        if (n > size - off)
            n = size - off;
        memcpy(buf + len, data + off, n);
        len += n;
        off += n;
        eof = n == 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 23) + 1;
    data++, size--;
    struct framed big = {0}, small = {0};
    frame(data, size, CAP, true, &big);
    frame(data, size, step, false, &small);
    if (big.hash != small.hash || big.msgs != small.msgs || big.too_long != small.too_long)
        abort();
    parse(data, size);
    return 0;
}
