#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/syslog.h"

/* 2026-12-02T12:00:00Z */
#define NOW_NS (1796212800LL * 1000000000LL)

static bool eq(struct bt_syslog_str f, const char *want)
{
    if (!want)
        return f.p == NULL;
    return f.p && f.n == strlen(want) && memcmp(f.p, want, f.n) == 0;
}

static void ok5424(const char *s, struct bt_syslog_msg *m)
{
    cr_assert_eq(bt_syslog_parse_rfc5424(s, strlen(s), m), 0, "rejected: %s", s);
}

static void bad5424(const char *s)
{
    struct bt_syslog_msg m;
    cr_assert_eq(bt_syslog_parse_rfc5424(s, strlen(s), &m), -EINVAL, "accepted: %s", s);
}

Test(syslog, rfc5424_every_header_field)
{
    struct bt_syslog_msg m;
    ok5424("<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 123 ID47 - "
           "An application event",
           &m);
    cr_assert_eq(m.facility, 20);
    cr_assert_eq(m.severity, 5);
    cr_assert_eq(m.version, 1);
    cr_assert(m.has_ts);
    cr_assert_eq(m.ts_ns, 1065910455003000000LL);
    cr_assert(eq(m.hostname, "mymachine.example.com"));
    cr_assert(eq(m.app_name, "evntslog"));
    cr_assert(eq(m.proc_id, "123"));
    cr_assert(eq(m.msg_id, "ID47"));
    cr_assert(eq(m.sd, NULL));
    cr_assert(eq(m.msg, "An application event"));
    cr_assert_str_eq(bt_syslog_severity_name(m.severity), "notice");
    cr_assert_str_eq(bt_syslog_facility_name(m.facility), "local4");
}

Test(syslog, rfc5424_nil_fields_and_no_message)
{
    struct bt_syslog_msg m;
    ok5424("<0>1 - - - - - -", &m);
    cr_assert_eq(m.facility, 0);
    cr_assert_eq(m.severity, 0);
    cr_assert_not(m.has_ts);
    cr_assert(eq(m.hostname, NULL) && eq(m.app_name, NULL) && eq(m.proc_id, NULL) &&
              eq(m.msg_id, NULL) && eq(m.msg, NULL));
    ok5424("<191>1 2003-08-24T05:14:15.000003-07:00 h a p m - \xef\xbb\xbfwith BOM", &m);
    cr_assert(eq(m.msg, "with BOM"));
    cr_assert_eq(m.ts_ns, 1061727255000003000LL);
}

Test(syslog, rfc5424_structured_data_walk_and_unescape)
{
    struct bt_syslog_msg m;
    ok5424("<165>1 2003-10-11T22:14:15.003Z h app - ID47 [exampleSDID@32473 iut=\"3\" "
           "eventSource=\"App \\\"x\\\" \\] \\\\\" eventID=\"1011\"][examplePriority@32473 "
           "class=\"high\"][empty@1] msg",
           &m);
    cr_assert(eq(m.msg, "msg"));
    cr_assert_not_null(m.sd.p);
    size_t pos = 0;
    struct bt_syslog_str id = {0}, name, value;
    const char *want[][3] = {{"exampleSDID@32473", "iut", "3"},
                             {"exampleSDID@32473", "eventSource", "App \"x\" ] \\"},
                             {"exampleSDID@32473", "eventID", "1011"},
                             {"examplePriority@32473", "class", "high"}};
    for (size_t k = 0; k < 4; k++) {
        cr_assert_eq(bt_syslog_sd_next(&m.sd, &pos, &id, &name, &value), 1, "param %zu", k);
        char out[64];
        size_t n = bt_syslog_sd_unescape(value.p, value.n, out);
        cr_assert(eq(id, want[k][0]));
        cr_assert(eq(name, want[k][1]));
        cr_assert(n == strlen(want[k][2]) && memcmp(out, want[k][2], n) == 0, "value %zu", k);
    }
    cr_assert_eq(bt_syslog_sd_next(&m.sd, &pos, &id, &name, &value), 0);
}

Test(syslog, rfc5424_hostile_input_is_refused)
{
    bad5424("");
    bad5424("<");
    bad5424("<>1 - - - - - -");
    bad5424("<192>1 - - - - - -");  /* PRI out of range */
    bad5424("<01>1 - - - - - -");   /* leading zero */
    bad5424("<1234>1 - - - - - -"); /* four digits */
    bad5424("<13>0 - - - - - -");   /* version 0 */
    bad5424("<13>1 - - - - -");     /* no SD */
    bad5424("<13>1 notatime h a p m - x");
    bad5424("<13>1 - h a p m [id k=\"unterminated] x");
    bad5424("<13>1 - h a p m [id k=v] x");
    bad5424("<13>1 - h a p m [] x");
    bad5424("<13>1 - h a p m [id k=\"v\"");
    bad5424("<13>1 - h a p m [id k=\"v\"]x");
    bad5424("<13>1 - h a p m [id k=\"v\\\"] x");
    char longapp[128];
    memset(longapp, 'a', sizeof(longapp));
    longapp[127] = '\0';
    char buf[256];
    snprintf(buf, sizeof(buf), "<13>1 - h %s p m - x", longapp); /* APP-NAME > 48 */
    bad5424(buf);
    /* every prefix of a valid message fails cleanly or parses; never reads past n */
    const char *full = "<165>1 2003-10-11T22:14:15.003Z h app 1 ID [a@1 b=\"c\\]\"] hello";
    for (size_t n = 0; n < strlen(full); n++) {
        char *cut = malloc(n ? n : 1);
        memcpy(cut, full, n);
        struct bt_syslog_msg m;
        int rc = bt_syslog_parse_rfc5424(cut, n, &m);
        cr_assert(rc == 0 || rc == -EINVAL);
        free(cut);
    }
}

Test(syslog, rfc5424_random_bytes_never_crash)
{
    unsigned seed = 42;
    char buf[200];
    for (int r = 0; r < 20000; r++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof(buf));
        const char alpha[] = "<>0123456789 -[]=\"\\@abcT:.Z";
        for (size_t i = 0; i < n; i++)
            buf[i] = (r & 1) ? (char)rand_r(&seed) : alpha[rand_r(&seed) % (sizeof(alpha) - 1)];
        if (n > 6 && (r & 2))
            memcpy(buf, "<13>1 ", 6);
        struct bt_syslog_msg m;
        char *copy = malloc(n ? n : 1);
        memcpy(copy, buf, n);
        if (bt_syslog_parse_rfc5424(copy, n, &m) == 0) {
            size_t pos = 0;
            struct bt_syslog_str id = {0}, name, value;
            while (bt_syslog_sd_next(&m.sd, &pos, &id, &name, &value) == 1)
                cr_assert(value.p + value.n <= copy + n);
        }
        bt_syslog_parse_rfc3164(copy, n, NOW_NS, &m);
        cr_assert(m.msg.p == NULL || m.msg.p + m.msg.n <= copy + n);
        free(copy);
    }
}

Test(syslog, rfc3164_logger_forms)
{
    struct bt_syslog_msg m;
    const char *s = "<13>Dec  2 11:59:58 myhost alice[123]: hello world";
    cr_assert_eq(bt_syslog_parse_rfc3164(s, strlen(s), NOW_NS, &m), 0);
    cr_assert_eq(m.facility, 1);
    cr_assert_eq(m.severity, 5);
    cr_assert(m.has_ts);
    cr_assert_eq(m.ts_ns, NOW_NS - 2000000000LL);
    cr_assert(eq(m.hostname, "myhost"));
    cr_assert(eq(m.app_name, "alice"));
    cr_assert(eq(m.proc_id, "123"));
    cr_assert(eq(m.msg, "hello world"));

    s = "<34>Oct 11 22:14:15 mymachine su: 'su root' failed";
    cr_assert_eq(bt_syslog_parse_rfc3164(s, strlen(s), NOW_NS, &m), 0);
    cr_assert(eq(m.hostname, "mymachine"));
    cr_assert(eq(m.app_name, "su"));
    cr_assert(eq(m.proc_id, NULL));
    cr_assert(eq(m.msg, "'su root' failed"));
}

Test(syslog, rfc3164_year_closest_to_now)
{
    struct bt_syslog_msg m;
    /* Now is 2026-12-02: "Jan  1" is a month ahead, so it is next year's; in January
     * "Dec 31" is last year's. */
    const char *s = "<13>Jan  1 00:00:00 h t: x";
    cr_assert_eq(bt_syslog_parse_rfc3164(s, strlen(s), NOW_NS, &m), 0);
    cr_assert_eq(m.ts_ns, 1798761600LL * 1000000000LL); /* 2027-01-01 */
    s = "<13>Dec 31 23:00:00 h t: x";
    int64_t jan2 = 1767312000LL * 1000000000LL; /* 2026-01-02 */
    cr_assert_eq(bt_syslog_parse_rfc3164(s, strlen(s), jan2, &m), 0);
    cr_assert_eq(m.ts_ns, (1767312000LL - 2 * 86400 + 23 * 3600) * 1000000000LL);
}

Test(syslog, rfc3164_lenient_rest_is_message)
{
    struct bt_syslog_msg m;
    const char *s = "<13>no timestamp at all";
    cr_assert_eq(bt_syslog_parse_rfc3164(s, strlen(s), NOW_NS, &m), 0);
    cr_assert_not(m.has_ts);
    cr_assert(eq(m.msg, "no timestamp at all"));
    s = "<13>2026-12-02T11:00:00Z host app: rfc3339 stamp";
    cr_assert_eq(bt_syslog_parse_rfc3164(s, strlen(s), NOW_NS, &m), 0);
    cr_assert(m.has_ts);
    cr_assert_eq(m.ts_ns, NOW_NS - 3600LL * 1000000000LL);
    cr_assert(eq(m.hostname, "host"));
    cr_assert(eq(m.app_name, "app"));
    cr_assert(eq(m.msg, "rfc3339 stamp"));
    s = "<13>Dec  2 11:00:00 tag[9]: no host";
    cr_assert_eq(bt_syslog_parse_rfc3164(s, strlen(s), NOW_NS, &m), 0);
    cr_assert(eq(m.hostname, NULL));
    cr_assert(eq(m.app_name, "tag"));
    cr_assert(eq(m.proc_id, "9"));
    cr_assert(eq(m.msg, "no host"));
    s = "no pri";
    cr_assert_eq(bt_syslog_parse_rfc3164(s, strlen(s), NOW_NS, &m), -EINVAL);
    s = "<13>";
    cr_assert_eq(bt_syslog_parse_rfc3164(s, strlen(s), NOW_NS, &m), 0);
    cr_assert(eq(m.msg, NULL));
}

/* ---- TCP framing ---- */

/* Frames stream s as a receiver's connection does, in reads of at most step bytes into a
 * buffer of max_msg + BT_SYSLOG_FRAME_HDR; the messages joined by '|' go to out. Returns the
 * number of messages dropped as too long. */
static int frame_all(const char *s, size_t step, size_t max_msg, char *out, size_t outlen)
{
    size_t cap = max_msg + BT_SYSLOG_FRAME_HDR, len = 0, off = 0, n = strlen(s);
    char *buf = malloc(cap);
    struct bt_syslog_framer fr = {0};
    bool eof = false;
    int dropped = 0;
    out[0] = '\0';
    cr_assert_not_null(buf);
    for (;;) {
        size_t pos = 0, used, mlen;
        const char *msg;
        while (pos < len) {
            enum bt_syslog_frame_rc k =
                bt_syslog_frame(&fr, buf + pos, len - pos, eof, max_msg, &msg, &mlen, &used);
            if (k == BT_SYSLOG_FRAME_MSG)
                snprintf(out + strlen(out), outlen - strlen(out), "%s%.*s", out[0] ? "|" : "",
                         (int)mlen, msg);
            dropped += k == BT_SYSLOG_FRAME_TOO_LONG;
            pos += used;
            if (k == BT_SYSLOG_FRAME_MORE)
                break;
        }
        memmove(buf, buf + pos, len - pos);
        len -= pos;
        if (eof)
            break;
        cr_assert_lt(len, cap, "framing left a full buffer (step %zu)", step);
        size_t k = cap - len < step ? cap - len : step;
        k = k < n - off ? k : n - off;
        memcpy(buf + len, s + off, k);
        len += k, off += k;
        eof = k == 0;
    }
    free(buf);
    return dropped;
}

static void expect_frames(const char *s, size_t max_msg, const char *want, int want_dropped)
{
    char out[1024];
    for (size_t step = 1; step <= max_msg + BT_SYSLOG_FRAME_HDR; step++) {
        int d = frame_all(s, step, max_msg, out, sizeof(out));
        cr_assert_str_eq(out, want, "reads of %zu bytes", step);
        cr_assert_eq(d, want_dropped, "reads of %zu bytes: %d dropped", step, d);
    }
}

Test(syslog, framing_octet_counting_and_newlines_whatever_the_reads)
{
    expect_frames("5 hello6 world!\nplain line\r\n\n\r3 abc", 16, "hello|world!|plain line|abc", 0);
    /* digits not followed by a space start a newline-framed message */
    expect_frames("42abc\n7\n", 16, "42abc|7", 0);
    /* a cut-off counted message at the end is dropped; an unterminated line is kept */
    expect_frames("3 abc9 cut", 16, "abc", 0);
    expect_frames("3 abclast", 16, "abc|last", 0);
}

Test(syslog, framing_drops_over_long_messages_whole)
{
    expect_frames("20 aaaaaaaaaaaaaaaaaaaa4 okay", 8, "okay", 1);
    expect_frames("xxxxxxxxxxxxxxxxxxxxxxxxx\nok\n", 8, "ok", 1);
    expect_frames("123456789\nok\n", 8, "ok", 1);
}

/* Found by fuzzing: a line of exactly max_msg bytes ended by CRLF was dropped as too long
 * when a read ended between the CR and the LF, and kept otherwise. */
Test(syslog, framing_crlf_line_of_max_length_is_kept_whatever_the_reads)
{
    expect_frames("abcdefgh\r\nnext\n", 8, "abcdefgh|next", 0);
    expect_frames("abcdefghi\r\nnext\n", 8, "next", 1);
}
