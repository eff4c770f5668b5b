/* The test Loki server stores what Loki stores: duplicates, the out-of-order window, the line
 * size limit and label validation, with Loki's answers. Requests are hand-built here (protobuf
 * + snappy + curl) so the rules are tested apart from bpftail's client. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "fake_loki.h"
#include "push.pb-c.h"

struct tentry {
    int64_t ts;
    const char *line;
};

struct tstream {
    const char *labels;
    size_t n;
    const struct tentry *e;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    char *out = ctx;
    size_t have = strlen(out), add = size * n;
    if (have + add >= 8192)
        add = 8191 - have;
    memcpy(out + have, p, add);
    out[have + add] = '\0';
    return size * n;
}

/* Pushes the streams; returns the HTTP status, the answer body in resp (8 KiB). */
static long push(struct bt_fake_loki *f, const char *tenant, const struct tstream *ss, size_t ns,
                 char *resp)
{
    Logproto__PushRequest req = LOGPROTO__PUSH_REQUEST__INIT;
    Logproto__StreamAdapter **sp = calloc(ns, sizeof(*sp));
    req.n_streams = ns;
    req.streams = sp;
    for (size_t i = 0; i < ns; i++) {
        sp[i] = calloc(1, sizeof(**sp));
        logproto__stream_adapter__init(sp[i]);
        sp[i]->labels = (char *)ss[i].labels;
        sp[i]->n_entries = ss[i].n;
        sp[i]->entries = calloc(ss[i].n, sizeof(*sp[i]->entries));
        for (size_t j = 0; j < ss[i].n; j++) {
            Logproto__EntryAdapter *e = calloc(1, sizeof(*e));
            Logproto__Timestamp *t = calloc(1, sizeof(*t));
            logproto__entry_adapter__init(e);
            logproto__timestamp__init(t);
            t->seconds = ss[i].e[j].ts / 1000000000LL;
            t->nanos = (int32_t)(ss[i].e[j].ts % 1000000000LL);
            e->timestamp = t;
            e->line = (char *)ss[i].e[j].line;
            sp[i]->entries[j] = e;
        }
    }
    size_t raw_len = logproto__push_request__get_packed_size(&req);
    uint8_t *raw = malloc(raw_len + 1);
    logproto__push_request__pack(&req, raw);
    size_t clen = snappy_max_compressed_length(raw_len);
    char *comp = malloc(clen);
    cr_assert_eq(snappy_compress((char *)raw, raw_len, comp, &clen), SNAPPY_OK);

    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    char th[256];
    if (tenant) {
        snprintf(th, sizeof(th), "X-Scope-OrgID: %s", tenant);
        h = curl_slist_append(h, th);
    }
    resp[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, bt_fake_loki_url(f));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, comp);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)clen);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(comp);
    free(raw);
    for (size_t i = 0; i < ns; i++) {
        for (size_t j = 0; j < ss[i].n; j++) {
            free(sp[i]->entries[j]->timestamp);
            free(sp[i]->entries[j]);
        }
        free(sp[i]->entries);
        free(sp[i]);
    }
    free(sp);
    return status;
}

static long push1(struct bt_fake_loki *f, const char *labels, const struct tentry *e, size_t n,
                  char *resp)
{
    struct tstream s = {labels, n, e};
    return push(f, NULL, &s, 1, resp);
}

#define SEC 1000000000LL
#define T0 (1700000000LL * SEC)

static char resp[8192];

Test(fake_loki, identical_stream_ts_and_line_is_stored_once_with_204)
{
    struct bt_fake_loki *f = bt_fake_loki_start();
    static struct tentry e[5000];
    for (int i = 0; i < 5000; i++)
        e[i] = (struct tentry){T0, "GET /healthz 200 0.001"};
    cr_assert_eq(push1(f, "{job=\"a\"}", e, 5000, resp), 204, "%s", resp);
    cr_assert_eq(bt_fake_loki_received(f), 5000);
    cr_assert_eq(bt_fake_loki_entries(f), 1);
    cr_assert_eq(bt_fake_loki_duplicates(f), 4999);
    /* Across requests, and against any stored entry, not only the last one. */
    struct tentry more[] = {{T0 + 1, "other"}, {T0, "GET /healthz 200 0.001"}, {T0, "b"}};
    cr_assert_eq(push1(f, "{job=\"a\"}", more, 3, resp), 204);
    cr_assert_eq(bt_fake_loki_entries(f), 3);
    /* Same ts and line in another stream, or another tenant: a different entry. Labels are
     * compared as Loki keys them: sorted, empty values dropped. */
    cr_assert_eq(push1(f, "{job=\"b\"}", e, 1, resp), 204);
    cr_assert_eq(push1(f, "{ x=\"\", job='a' }", e, 1, resp), 204);
    cr_assert_eq(bt_fake_loki_entries(f), 4, "equal label set must be the same stream");
    struct tstream s = {"{job=\"a\"}", 1, e};
    cr_assert_eq(push(f, "t1", &s, 1, resp), 204);
    cr_assert_eq(bt_fake_loki_entries(f), 5);
    /* Distinct timestamps: all stored. */
    for (int i = 0; i < 5000; i++)
        e[i].ts = T0 + 10 * SEC + i;
    cr_assert_eq(push1(f, "{job=\"a\"}", e, 5000, resp), 204);
    cr_assert_eq(bt_fake_loki_entries(f), 5005);
    cr_assert_eq(bt_fake_loki_find_line(f, "GET /healthz 200 0.001"), 5003);
    bt_fake_loki_stop(f);
}

Test(fake_loki, discard_mode_drops_repeats_of_the_last_entry)
{
    struct bt_fake_loki_opts o = {.discard = true, .quiet = true};
    struct bt_fake_loki *f = bt_fake_loki_start_opts(&o);
    struct tentry e[] = {{T0, "x"}, {T0, "x"}, {T0, "y"}, {T0 + 1, "y"}};
    cr_assert_eq(push1(f, "{job=\"a\"}", e, 4, resp), 204);
    cr_assert_eq(bt_fake_loki_received(f), 4);
    cr_assert_eq(bt_fake_loki_entries(f), 3);
    bt_fake_loki_stop(f);
}

Test(fake_loki, entries_too_far_behind_are_rejected_the_rest_kept)
{
    struct bt_fake_loki *f = bt_fake_loki_start();
    /* Newest 10:00; the window is 1 h (max_chunk_age 2 h / 2): 09:00 is still fine, 08:59:59
     * is not. Out of order within the window is accepted. */
    struct tentry e[] = {{T0 + 3600 * SEC, "newest"},   {T0 + 1800 * SEC, "older, in window"},
                         {T0, "exactly at the cutoff"}, {T0 - SEC, "too old 1"},
                         {T0 + 3601 * SEC, "newer"},    {T0 - 5 * SEC, "too old 2"}};
    struct tentry ok[] = {{T0 - 3600 * SEC, "other stream, own window"}};
    struct tstream ss[] = {{"{job=\"a\"}", 6, e}, {"{job=\"b\"}", 1, ok}};
    cr_assert_eq(push(f, NULL, ss, 2, resp), 400);
    cr_assert(strstr(resp, "entry with timestamp 2023-11-14 22:13:19 +0000 UTC ignored, reason: "
                           "'entry too far behind, entry timestamp is: 2023-11-14T22:13:19Z, "
                           "oldest acceptable timestamp is: 2023-11-14T22:13:20Z',\n"),
              "%s", resp);
    cr_assert(strstr(resp, "total ignored: 2 out of 6 for stream: {job=\"a\"}"), "%s", resp);
    cr_assert_eq(bt_fake_loki_entries(f), 5);
    cr_assert_eq(bt_fake_loki_rejected(f, "too_far_behind"), 2);
    cr_assert_eq(bt_fake_loki_find_line(f, "too old 1"), 0);
    cr_assert_eq(bt_fake_loki_find_line(f, "newer"), 1);
    /* max_chunk_age 0: no window. */
    struct bt_fake_loki_limits l = bt_fake_loki_default_limits();
    l.max_chunk_age_ns = 0;
    bt_fake_loki_set_limits(f, &l);
    cr_assert_eq(push1(f, "{job=\"a\"}", &e[3], 1, resp), 204, "%s", resp);
    bt_fake_loki_stop(f);
}

Test(fake_loki, long_lines_are_rejected_or_truncated)
{
    struct bt_fake_loki *f = bt_fake_loki_start();
    size_t max = 256 * 1024;
    char *big = malloc(max + 2);
    memset(big, 'x', max + 1);
    big[max + 1] = '\0';
    struct tentry e[] = {{T0, big}, {T0 + 1, "short"}};
    cr_assert_eq(push1(f, "{job=\"a\"}", e, 2, resp), 400);
    cr_assert_str_eq(resp, "Max entry size '262144' bytes exceeded for stream '{job=\"a\"}' while "
                           "adding an entry with length '262145' bytes");
    cr_assert_eq(bt_fake_loki_entries(f), 1);
    cr_assert_eq(bt_fake_loki_rejected(f, "line_too_long"), 1);
    big[max] = '\0'; /* exactly the limit: fine */
    cr_assert_eq(push1(f, "{job=\"a\"}", e, 1, resp), 204);
    big[max] = 'x';
    struct bt_fake_loki_limits l = bt_fake_loki_default_limits();
    l.max_line_size = 10;
    l.max_line_size_truncate = true;
    bt_fake_loki_set_limits(f, &l);
    struct tentry t[] = {{T0 + 2, "0123456789abcdef"}};
    cr_assert_eq(push1(f, "{job=\"a\"}", t, 1, resp), 204);
    cr_assert_eq(bt_fake_loki_find_line(f, "0123456789"), 1);
    l.max_line_size = 0; /* unlimited */
    l.max_line_size_truncate = false;
    bt_fake_loki_set_limits(f, &l);
    e[0].ts = T0 + 3;
    cr_assert_eq(push1(f, "{job=\"a\"}", e, 1, resp), 204);
    cr_assert_eq(bt_fake_loki_entries(f), 4);
    free(big);
    bt_fake_loki_stop(f);
}

Test(fake_loki, invalid_labels_reject_the_stream_with_lokis_messages)
{
    struct bt_fake_loki *f = bt_fake_loki_start();
    struct tentry e[] = {{T0, "line"}};
    struct tstream ss[] = {{"{job=\"a\", job=\"b\"}", 1, e}, {"{job=\"ok\"}", 1, e}};
    cr_assert_eq(push(f, NULL, ss, 2, resp), 400);
    cr_assert_str_eq(resp, "stream '{job=\"a\", job=\"b\"}' has duplicate label name: 'job'");
    cr_assert_eq(bt_fake_loki_entries(f), 1, "the valid stream is kept");
    cr_assert_eq(bt_fake_loki_rejected(f, "invalid_labels"), 1);

    char err[8192];
    char many[512] = "{";
    for (int i = 0; i < 16; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sl%02d=\"v\"", i ? ", " : "",
                 i);
    strcat(many, "}");
    cr_assert_eq(bt_fake_loki_check_labels(many, err, sizeof(err)), -EINVAL);
    char want[700];
    snprintf(want, sizeof(want), "entry for stream '%s' has 16 label names; limit 15", many);
    cr_assert_str_eq(err, want);
    strcpy(strstr(many, ", l15"), "}"); /* 15: fine */
    cr_assert_eq(bt_fake_loki_check_labels(many, err, sizeof(err)), 0, "%s", err);

    char name[1100] = "{", value[2200];
    memset(name + 1, 'n', 1025);
    strcpy(name + 1026, "=\"v\"}");
    cr_assert_eq(bt_fake_loki_check_labels(name, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "has label name too long: 'nnn"), "%s", err);
    strcpy(value, "{job=\"");
    memset(value + 6, 'v', 2049);
    strcpy(value + 6 + 2049, "\"}");
    cr_assert_eq(bt_fake_loki_check_labels(value, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "has label value too long: 'vvv"), "%s", err);
    /* Length is counted unquoted: 2048 escaped quotes are 4096 bytes sent, 2048 stored. */
    strcpy(value, "{job=\"");
    for (int i = 0; i < 1024; i++)
        strcat(value, "\\\"");
    strcat(value, "\"}");
    cr_assert_eq(bt_fake_loki_check_labels(value, err, sizeof(err)), 0, "%s", err);

    cr_assert_eq(bt_fake_loki_check_labels("{1a=\"x\"}", err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "Error parsing labels"), "%s", err);
    cr_assert_eq(bt_fake_loki_check_labels("{a=\"\"}", err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "error at least one label pair is required per stream");

    struct bt_fake_loki_limits l = bt_fake_loki_default_limits();
    l.max_label_names_per_series = 1;
    bt_fake_loki_set_limits(f, &l);
    struct tstream two = {"{a=\"1\", b=\"2\"}", 1, e};
    cr_assert_eq(push(f, NULL, &two, 1, resp), 400);
    cr_assert(strstr(resp, "has 2 label names; limit 1"), "%s", resp);
    bt_fake_loki_stop(f);
}

Test(fake_loki, reset_forgets_streams_but_keeps_limits)
{
    struct bt_fake_loki *f = bt_fake_loki_start();
    struct bt_fake_loki_limits l = bt_fake_loki_default_limits();
    l.max_line_size = 3;
    bt_fake_loki_set_limits(f, &l);
    struct tentry e[] = {{T0, "abc"}, {T0, "abcd"}};
    cr_assert_eq(push1(f, "{job=\"a\"}", e, 2, resp), 400);
    cr_assert_eq(bt_fake_loki_entries(f), 1);
    bt_fake_loki_reset(f);
    cr_assert_eq(bt_fake_loki_entries(f), 0);
    cr_assert_eq(bt_fake_loki_received(f), 0);
    cr_assert_eq(push1(f, "{job=\"a\"}", e, 1, resp), 204, "not a duplicate after reset");
    cr_assert_eq(push1(f, "{job=\"a\"}", e + 1, 1, resp), 400, "limits survive reset");
    /* Far older than before the reset: the stream's window was forgotten too. */
    struct tentry old[] = {{T0 - 100 * 3600 * SEC, "abc"}};
    bt_fake_loki_reset(f);
    cr_assert_eq(push1(f, "{job=\"a\"}", old, 1, resp), 204);
    bt_fake_loki_stop(f);
}
