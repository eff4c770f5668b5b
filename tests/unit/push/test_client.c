#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "push/batch.h"
#include "push/client.h"
#include "config/config.h"
#include "core/entry.h"
#include "fake_loki.h"
#include "core/metrics.h"
#include "tiny_http.h"
#include "tmpdir.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"

static struct bt_fake_loki *loki;
static struct bt_metrics *metrics;
static struct bt_client_config cfg;
static char dir[256];

static void setup(void)
{
    bt_log_set_level(BT_LOG_ERROR);
    loki = bt_fake_loki_start();
    cr_assert_not_null(loki);
    metrics = bt_metrics_new();
    memset(&cfg, 0, sizeof(cfg));
    cfg.url = (char *)bt_fake_loki_url(loki);
    cfg.min_backoff_ns = 10 * BT_NS_PER_MS;
    cfg.max_backoff_ns = 40 * BT_NS_PER_MS;
    cfg.max_retries = 5;
    cfg.timeout_ns = 5 * BT_NS_PER_SEC;
    dir[0] = '\0';
}

static void teardown(void)
{
    bt_fake_loki_stop(loki);
    bt_metrics_free(metrics);
    if (dir[0])
        bt_tmpdir_remove(dir);
}

TestSuite(client, .init = setup, .fini = teardown, .timeout = 30);

static void add(struct bt_batch *b, const char *canon, int64_t ts, const char *line)
{
    struct bt_entry e = {.ts_ns = ts, .line = line, .line_len = strlen(line)};
    cr_assert_eq(bt_batch_add(b, canon, strlen(canon), bt_hash64(canon, strlen(canon)), &e), 0);
}

/* n entries "line 0".. with timestamps first_ts, first_ts + 1, ... */
static struct bt_batch *batch_at(const char *tenant, const char *canon, int n, int64_t first_ts)
{
    struct bt_batch *b = bt_batch_new(tenant);
    char line[64];
    for (int i = 0; i < n; i++) {
        snprintf(line, sizeof(line), "line %d", i);
        add(b, canon, first_ts + i, line);
    }
    return b;
}

static struct bt_batch *batch(const char *tenant, const char *canon, int n)
{
    return batch_at(tenant, canon, n, 1700000000000000000LL);
}

/* Waits for the next decided batch through the notify fd, as the loop thread does. */
static struct bt_batch *wait_done(struct bt_client *c, int timeout_ms)
{
    int64_t end = bt_mono_ns() + (int64_t)timeout_ms * BT_NS_PER_MS;
    for (;;) {
        struct bt_batch *b = bt_client_take_done(c);
        if (b)
            return b;
        int64_t left = (end - bt_mono_ns()) / BT_NS_PER_MS;
        if (left <= 0)
            return NULL;
        struct pollfd p = {.fd = bt_client_notify_fd(c), .events = POLLIN};
        poll(&p, 1, (int)left);
    }
}

/* Pushes one batch and returns it decided. */
static struct bt_batch *push(struct bt_client *c, struct bt_batch *b)
{
    cr_assert_eq(bt_client_submit(c, b), 0);
    struct bt_batch *d = wait_done(c, 10000);
    cr_assert_not_null(d, "no decision within 10s");
    cr_assert_eq(d, b);
    return d;
}

Test(client, accepted_batch_is_ok_and_recorded_by_loki)
{
    struct bt_client *c = bt_client_new(&cfg, metrics);
    cr_assert_not_null(c);
    struct bt_batch *b = push(c, batch("", "{job=\"varlogs\"}", 3));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(b->status, 204);
    cr_assert_eq(b->attempts, 1);
    cr_assert_gt(b->encoded_bytes, 0);
    cr_assert_eq(bt_fake_loki_entries(loki), 3);
    struct bt_fake_entry e;
    cr_assert_eq(bt_fake_loki_entry(loki, 1, &e), 0);
    cr_assert_str_eq(e.labels, "{job=\"varlogs\"}");
    cr_assert_str_eq(e.line, "line 1");
    cr_assert_eq(e.ts_ns, 1700000000000000001LL);
    cr_assert_str_eq(e.tenant, "");
    char v[256];
    cr_assert(bt_fake_loki_last_header(loki, "Content-Type", v, sizeof(v)));
    cr_assert_str_eq(v, "application/x-protobuf");
    cr_assert(bt_fake_loki_last_header(loki, "User-Agent", v, sizeof(v)));
    cr_assert_str_eq(v, "bpftail/" BT_VERSION);
    cr_assert_not(bt_fake_loki_last_header(loki, "X-Scope-OrgID", v, sizeof(v)));
    cr_assert_not(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_sent_entries_total", ""), 3);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_sent_bytes_total", ""), (double)b->encoded_bytes);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_encoded_bytes_total", ""),
                 (double)b->encoded_bytes);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_request_duration_seconds", "status_code=\"204\""),
                 bt_metrics_sum(metrics, "bpftail_request_duration_seconds", ""));
    cr_assert_eq(bt_client_pending(c), 0);
    cr_assert_eq(bt_client_pending_bytes(c), 0);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, drop_series_of_a_tenant_exist_at_zero_after_first_push)
{
    struct bt_client *c = bt_client_new(&cfg, metrics);
    bt_batch_release(push(c, batch("team-z", "{job=\"a\"}", 1)));
    struct bt_buf out;
    bt_buf_init(&out, 1 << 20);
    cr_assert_eq(bt_metrics_render(metrics, &out), 0);
    const char *text = bt_buf_str(&out);
    char want[256];
    snprintf(want, sizeof(want),
             "bpftail_dropped_entries_total{host=\"127.0.0.1:%u\",reason=\"too_old\","
             "tenant=\"team-z\"} 0",
             bt_fake_loki_port(loki));
    cr_assert(strstr(text, want), "missing %s in:\n%s", want, text);
    cr_assert(strstr(text, "bpftail_batch_retries_total{"), "%s", text);
    bt_buf_free(&out);
    bt_client_free(c);
}

Test(client, server_error_is_retried_then_accepted)
{
    cr_assert_eq(bt_fake_loki_script_spec(loki, "500,503"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 2));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(b->attempts, 3);
    cr_assert_eq(bt_fake_loki_requests(loki), 3);
    cr_assert_eq(bt_fake_loki_entries(loki), 2);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_batch_retries_total", ""), 2);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_entries_total", ""), 0);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_sent_entries_total", ""), 2);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, rate_limited_batch_dropped_at_once_when_configured)
{
    cfg.drop_rate_limited_batches = true;
    cr_assert_eq(bt_fake_loki_script_spec(loki, "429"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("t1", "{job=\"a\"}", 4));
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_str_eq(b->reason, "rate_limited");
    cr_assert_eq(b->attempts, 1);
    cr_assert_eq(b->status, 429);
    cr_assert_eq(bt_fake_loki_requests(loki), 1);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_entries_total",
                                "reason=\"rate_limited\",tenant=\"t1\""),
                 4);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_bytes_total", "rate_limited"),
                 (double)b->bytes);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, rate_limited_batch_retried_by_default)
{
    cr_assert_eq(bt_fake_loki_script_spec(loki, "429,204"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(b->attempts, 2);
    bt_batch_release(b);
    bt_client_free(c);
}

/* A 4xx answer with body is dropped after one attempt with the expected reason. */
static void check_final(int status, const char *body, const char *reason)
{
    struct bt_fake_response r = {.status = status, .body = body};
    cr_assert_eq(bt_fake_loki_script(loki, &r), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 2));
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_str_eq(b->reason, reason);
    cr_assert_eq(b->attempts, 1, "a final status must not be retried");
    cr_assert_eq(b->status, status);
    cr_assert_eq(bt_fake_loki_requests(loki), 1);
    char match[64];
    snprintf(match, sizeof(match), "reason=\"%s\"", reason);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_entries_total", match), 2);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_batch_retries_total", ""), 0);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, too_old_is_dropped_with_reason)
{
    check_final(400,
                "entry for stream '{job=\"a\"}' has timestamp too old: 2020-01-01T00:00:00Z, "
                "oldest acceptable timestamp is: 2026-11-22T00:00:00Z",
                "too_old");
}

Test(client, too_new_is_dropped_with_reason)
{
    check_final(400, "entry for stream '{job=\"a\"}' has timestamp too new: 2030-01-01T00:00:00Z",
                "too_new");
}

Test(client, line_too_long_is_dropped_with_reason)
{
    check_final(400,
                "Max entry size '262144' bytes exceeded for stream '{job=\"a\"}' while adding an "
                "entry with length '300000' bytes",
                "line_too_long");
}

Test(client, out_of_order_is_dropped_with_reason)
{
    check_final(400,
                "entry with timestamp 2026-11-29 06:00:00 ignored, reason: 'entry too far behind, "
                "oldest acceptable timestamp is: 2026-11-29T07:00:00Z' for stream: {job=\"a\"},\n"
                "total ignored: 2 out of 2",
                "out_of_order");
}

Test(client, stream_limit_is_dropped_with_reason)
{
    check_final(400, "Maximum active stream limit exceeded, reduce the number of active streams",
                "stream_limited");
}

Test(client, other_4xx_is_dropped_as_http_4xx)
{
    check_final(400, "bad request", "http_4xx");
}

Test(client, refused_credentials_are_retried_then_accepted)
{
    cr_assert_eq(bt_fake_loki_script_spec(loki, "401,403"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 2));
    cr_assert_eq(b->outcome, BT_PUSH_OK, "a 401 or 403 must keep the batch");
    cr_assert_eq(b->attempts, 3);
    cr_assert_eq(bt_fake_loki_entries(loki), 2);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_push_failures_total", "reason=\"unauthorized\""),
                 2);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_entries_total", ""), 0);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, refused_credentials_drop_as_unauthorized_when_retries_run_out)
{
    cfg.max_retries = 2;
    bt_fake_loki_set_default(loki, 401);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 3));
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_str_eq(b->reason, "unauthorized");
    cr_assert_eq(b->attempts, 2);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_entries_total", "unauthorized"), 3);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, redirect_is_final_not_followed)
{
    check_final(301, "moved", "http_4xx");
}

/* Answers every request with a 307 to the test Loki server (a moved push endpoint). */
static void redirect_to_loki(void *ctx, const struct bt_tiny_req *rq, struct bt_tiny_resp *rs)
{
    int *hits = ctx;
    (*hits)++;
    rs->status = 307;
    snprintf(rs->location, sizeof(rs->location), "%s", bt_fake_loki_url(loki));
}

Test(client, follow_redirects_repeats_the_post_at_the_new_location)
{
    int hits = 0;
    struct bt_tiny_http *r = bt_tiny_http_start(redirect_to_loki, &hits);
    cr_assert_not_null(r);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/old/push", bt_tiny_http_port(r));
    cfg.url = url;
    cfg.follow_redirects = true;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 3));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(bt_fake_loki_entries(loki), 3, "the body came along with the 307");
    cr_assert_eq(hits, 1);
    bt_batch_release(b);
    bt_client_free(c);
    /* Off, the 307 is Loki's answer: final, as any 3xx. */
    cfg.follow_redirects = false;
    c = bt_client_new(&cfg, metrics);
    b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_eq(b->status, 307);
    cr_assert_eq(hits, 2);
    bt_batch_release(b);
    bt_client_free(c);
    bt_tiny_http_stop(r);
}

/* A TLS endpoint that answers every push with 204 and remembers the Host header it got. */
static void tls_loki(void *ctx, const struct bt_tiny_req *rq, struct bt_tiny_resp *rs)
{
    char *host = ctx;
    snprintf(host, 128, "%s", rq->host);
    rs->status = 204;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    static char buf[4][8192];
    static int next;
    char *b = buf[next++ % 4];
    size_t n = fread(b, 1, sizeof(buf[0]) - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

#define TLS_DIR BT_SOURCE_DIR "/tests/data/tls/"

Test(client, tls_server_name_is_the_name_checked_while_the_url_host_is_dialled)
{
    char host[128] = "";
    struct bt_tiny_http *srv = bt_tiny_http_start_tls(
        tls_loki, host, slurp(TLS_DIR "loki-test.pem"), slurp(TLS_DIR "loki-test.key"));
    cr_assert_not_null(srv);
    char url[128], want_host[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/loki/api/v1/push", bt_tiny_http_port(srv));
    snprintf(want_host, sizeof(want_host), "127.0.0.1:%u", bt_tiny_http_port(srv));
    cfg.url = url;
    cfg.max_retries = 1;
    cfg.tls.ca_file = TLS_DIR "loki-test.pem";
    /* The certificate names loki.test only: without server_name the check fails. */
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_eq(b->status, -1, "a failed certificate check is a transport error");
    bt_batch_release(b);
    bt_client_free(c);

    cfg.tls.server_name = "loki.test";
    c = bt_client_new(&cfg, metrics);
    b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_OK, "status %d", b->status);
    cr_assert_str_eq(host, want_host, "the Host header names the URL's host");
    bt_batch_release(b);
    bt_client_free(c);

    /* The CA inline, and a TLS version range the server can meet. */
    cfg.tls.ca_file = NULL;
    cfg.tls.ca = slurp(TLS_DIR "loki-test.pem");
    cfg.tls.min_version = "TLS12";
    cfg.tls.max_version = "TLS13";
    c = bt_client_new(&cfg, metrics);
    b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_OK, "status %d", b->status);
    bt_batch_release(b);
    bt_client_free(c);
    bt_tiny_http_stop(srv);
}

Test(client, enable_http2_keeps_http1_for_plain_http_as_go_does)
{
    cfg.enable_http2 = true;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 2));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(bt_fake_loki_entries(loki), 2);
    cr_assert_not(bt_fake_loki_last_header(loki, "Upgrade", NULL, 0), "no h2c upgrade");
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, request_too_large_is_dropped_with_reason)
{
    check_final(413, "request body too large", "request_too_large");
}

Test(client, labels_rejected_by_loki_are_invalid_labels)
{
    /* No script: the fake server itself rejects a stream without labels, as Loki does. */
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_eq(b->status, 400);
    cr_assert_str_eq(b->reason, "invalid_labels");
    bt_batch_release(b);
    b = push(c, batch("", "{job=unquoted}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_str_eq(b->reason, "invalid_labels");
    cr_assert_eq(bt_fake_loki_entries(loki), 0);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, retries_exhausted_on_server_errors_drop_as_ingester_error)
{
    cfg.max_retries = 3;
    bt_fake_loki_set_default(loki, 500);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 5));
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_str_eq(b->reason, "ingester_error");
    cr_assert_eq(b->attempts, 3);
    cr_assert_eq(bt_fake_loki_requests(loki), 3);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_batch_retries_total", ""), 3);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_dropped_entries_total", "ingester_error"), 5);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, retries_exhausted_on_429_drop_as_rate_limited)
{
    cfg.max_retries = 2;
    cr_assert_eq(bt_fake_loki_script_spec(loki, "500,429"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_str_eq(b->reason, "rate_limited");
    cr_assert_eq(b->attempts, 2);
    bt_batch_release(b);
    bt_client_free(c);
}

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(sa);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, l), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &l), 0);
    close(fd); /* nothing listens there now */
    return ntohs(sa.sin_port);
}

Test(client, connection_refused_is_retried_then_dropped)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/loki/api/v1/push", closed_port());
    cfg.url = url;
    cfg.max_retries = 3;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_eq(b->status, -1);
    cr_assert_eq(b->attempts, 3);
    cr_assert_str_eq(b->reason, "ingester_error");
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_batch_retries_total", ""), 3);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_push_failures_total", "reason=\"connect\""), 3);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, dropped_connection_is_retried_then_accepted)
{
    cr_assert_eq(bt_fake_loki_script_spec(loki, "drop,204"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(b->attempts, 2);
    cr_assert_eq(bt_fake_loki_entries(loki), 1);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, request_timeout_is_a_transport_error_and_retried)
{
    cfg.timeout_ns = 200 * BT_NS_PER_MS;
    cr_assert_eq(bt_fake_loki_script_spec(loki, "hang,204"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(b->attempts, 2);
    cr_assert_eq(bt_fake_loki_requests(loki), 2);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_batch_retries_total", ""), 1);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, tenant_header_sent_only_for_non_empty_tenant)
{
    struct bt_client *c = bt_client_new(&cfg, metrics);
    bt_batch_release(push(c, batch("team-a", "{job=\"a\"}", 2)));
    char v[64];
    cr_assert(bt_fake_loki_last_header(loki, "X-Scope-OrgID", v, sizeof(v)));
    cr_assert_str_eq(v, "team-a");
    bt_batch_release(push(c, batch("", "{job=\"a\"}", 3)));
    cr_assert_not(bt_fake_loki_last_header(loki, "X-Scope-OrgID", v, sizeof(v)));
    cr_assert_eq(bt_fake_loki_tenant_count(loki, "team-a"), 2);
    cr_assert_eq(bt_fake_loki_tenant_count(loki, ""), 3);
    bt_client_free(c);
}

Test(client, basic_auth_with_password_file_is_sent)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "pw", "s3cret\n", 7), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/pw", dir);
    cfg.basic_username = "user";
    cfg.basic_password_file = path;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    bt_batch_release(push(c, batch("", "{job=\"a\"}", 1)));
    char v[256];
    cr_assert(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_str_eq(v, "Basic dXNlcjpzM2NyZXQ="); /* base64("user:s3cret") */
    /* The file is read at use: a rotated password is picked up. */
    cr_assert_eq(bt_tmpdir_write(dir, "pw", "other", 5), 0);
    bt_batch_release(push(c, batch("", "{job=\"a\"}", 1)));
    cr_assert(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_str_eq(v, "Basic dXNlcjpvdGhlcg=="); /* base64("user:other") */
    bt_client_free(c);
}

Test(client, bearer_token_file_is_reread_for_each_request)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "tok", "abc123\n", 7), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/tok", dir);
    cfg.bearer_token_file = path;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    bt_batch_release(push(c, batch("", "{job=\"a\"}", 1)));
    char v[256];
    cr_assert(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_str_eq(v, "Bearer abc123");
    cr_assert_eq(bt_tmpdir_write(dir, "tok", "xyz", 3), 0);
    bt_batch_release(push(c, batch("", "{job=\"a\"}", 1)));
    cr_assert(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_str_eq(v, "Bearer xyz");
    bt_client_free(c);
}

Test(client, authorization_type_and_credentials_file_make_the_header)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "cred", " k-1\n", 5), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/cred", dir);
    cfg.auth_set = true;
    cfg.auth_type = "Token";
    cfg.auth_credentials_file = path;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    bt_batch_release(push(c, batch("", "{job=\"a\"}", 1)));
    char v[256];
    cr_assert(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_str_eq(v, "Token k-1");
    /* Read at each request, as Prometheus does. */
    cr_assert_eq(bt_tmpdir_write(dir, "cred", "k-2", 3), 0);
    bt_batch_release(push(c, batch("", "{job=\"a\"}", 1)));
    cr_assert(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_str_eq(v, "Token k-2");
    bt_client_free(c);
    /* The type defaults to Bearer. */
    cfg.auth_type = NULL;
    cfg.auth_credentials_file = NULL;
    cfg.auth_credentials = "plain";
    c = bt_client_new(&cfg, metrics);
    bt_batch_release(push(c, batch("", "{job=\"a\"}", 1)));
    cr_assert(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_str_eq(v, "Bearer plain");
    bt_client_free(c);
}

Test(client, basic_auth_username_file_is_read)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "user", "user\n", 5), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/user", dir);
    cfg.basic_username_file = path;
    cfg.basic_password = "s3cret";
    struct bt_client *c = bt_client_new(&cfg, metrics);
    bt_batch_release(push(c, batch("", "{job=\"a\"}", 1)));
    char v[256];
    cr_assert(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_str_eq(v, "Basic dXNlcjpzM2NyZXQ=");
    bt_client_free(c);
}

Test(client, bearer_token_and_custom_headers_are_sent_but_cannot_override_own)
{
    struct bt_header h[2] = {{"X-Custom", "yes"}, {"Content-Type", "text/plain"}};
    cfg.bearer_token = "tok";
    cfg.headers = h;
    cfg.n_headers = 2;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    char v[256];
    cr_assert(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_str_eq(v, "Bearer tok");
    cr_assert(bt_fake_loki_last_header(loki, "X-Custom", v, sizeof(v)));
    cr_assert_str_eq(v, "yes");
    cr_assert(bt_fake_loki_last_header(loki, "Content-Type", v, sizeof(v)));
    cr_assert_str_eq(v, "application/x-protobuf");
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, retry_after_is_honoured_and_capped_at_max_period)
{
    /* Retry-After 1 s with a 10-40 ms backoff: the retry waits for the server's second. */
    cfg.max_backoff_ns = 5 * BT_NS_PER_SEC;
    cr_assert_eq(bt_fake_loki_script_spec(loki, "429:retry-after=1,204"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    int64_t t0 = bt_mono_ns();
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 1));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_geq(bt_mono_ns() - t0, BT_NS_PER_SEC - 50 * BT_NS_PER_MS);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, retry_after_longer_than_max_period_is_capped)
{
    cfg.max_backoff_ns = 40 * BT_NS_PER_MS;
    cr_assert_eq(bt_fake_loki_script_spec(loki, "503:retry-after=3600,204"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 1)); /* fails if it waited an hour */
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(b->attempts, 2);
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, stop_during_hanging_request_returns_by_deadline_as_abandoned)
{
    cr_assert_eq(bt_fake_loki_script_spec(loki, "hang"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b1 = batch("", "{job=\"a\"}", 2);
    struct bt_batch *b2 = batch("", "{job=\"a\"}", 3);
    cr_assert_eq(bt_client_submit(c, b1), 0);
    cr_assert_eq(bt_client_submit(c, b2), 0);
    cr_assert_eq(bt_fake_loki_wait_requests(loki, 1, 5000), 0);
    cr_assert_eq(bt_client_pending(c), 2);
    cr_assert_eq(bt_client_pending_bytes(c), b1->bytes + b2->bytes);
    int64_t deadline = bt_mono_ns() + 300 * BT_NS_PER_MS;
    size_t n = bt_client_stop(c, deadline);
    int64_t late = bt_mono_ns() - deadline;
    cr_assert_eq(n, 2);
    cr_assert_lt(late, 500 * BT_NS_PER_MS, "stop returned %lld ms after its deadline",
                 (long long)(late / BT_NS_PER_MS));
    struct bt_batch *d1 = bt_client_take_done(c), *d2 = bt_client_take_done(c);
    cr_assert_not_null(d1);
    cr_assert_not_null(d2);
    cr_assert_eq(d1->outcome, BT_PUSH_ABANDONED);
    cr_assert_eq(d2->outcome, BT_PUSH_ABANDONED);
    cr_assert_null(bt_client_take_done(c));
    cr_assert_eq(bt_client_pending(c), 0);
    bt_batch_release(d1);
    bt_batch_release(d2);
    /* After stop, new work comes straight back abandoned. */
    struct bt_batch *b3 = batch("", "{job=\"a\"}", 1);
    cr_assert_eq(bt_client_submit(c, b3), -ESHUTDOWN);
    struct bt_batch *d3 = bt_client_take_done(c);
    cr_assert_eq(d3, b3);
    cr_assert_eq(d3->outcome, BT_PUSH_ABANDONED);
    bt_batch_release(d3);
    bt_client_free(c);
}

Test(client, stop_during_retry_sleep_abandons_at_deadline)
{
    cfg.min_backoff_ns = 60 * BT_NS_PER_SEC;
    cfg.max_backoff_ns = 120 * BT_NS_PER_SEC;
    cr_assert_eq(bt_fake_loki_script_spec(loki, "500"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = batch("", "{job=\"a\"}", 1);
    cr_assert_eq(bt_client_submit(c, b), 0);
    cr_assert_eq(bt_fake_loki_wait_requests(loki, 1, 5000), 0);
    cr_assert_eq(bt_client_stop(c, bt_mono_ns() + 100 * BT_NS_PER_MS), 1);
    struct bt_batch *d = bt_client_take_done(c);
    cr_assert_eq(d, b);
    cr_assert_eq(d->outcome, BT_PUSH_ABANDONED);
    bt_batch_release(d);
    bt_client_free(c);
}

Test(client, stop_delivers_queued_batches_before_deadline)
{
    struct bt_client *c = bt_client_new(&cfg, metrics);
    for (int i = 0; i < 5; i++) /* distinct timestamps: Loki stores a repeated entry once */
        cr_assert_eq(
            bt_client_submit(c, batch_at("", "{job=\"a\"}", 10, 1700000000000000000LL + 100 * i)),
            0);
    cr_assert_eq(bt_client_stop(c, bt_mono_ns() + 10 * BT_NS_PER_SEC), 0);
    int ok = 0;
    struct bt_batch *d;
    while ((d = bt_client_take_done(c))) {
        ok += d->outcome == BT_PUSH_OK;
        bt_batch_release(d);
    }
    cr_assert_eq(ok, 5);
    cr_assert_eq(bt_fake_loki_entries(loki), 50);
    bt_client_free(c);
}

Test(client, notify_fd_is_readable_only_while_batches_wait)
{
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 1)); /* push() drained the queue */
    struct pollfd p = {.fd = bt_client_notify_fd(c), .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 0), 0, "eventfd still readable with nothing to take");
    bt_batch_release(b);
    bt_client_free(c);
}

Test(client, name_defaults_to_host_and_port)
{
    struct bt_client *c = bt_client_new(&cfg, metrics);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", bt_fake_loki_port(loki));
    cr_assert_str_eq(bt_client_name(c), want);
    bt_client_free(c);
}

Test(client_classify, statuses_and_messages_map_to_reasons)
{
    const char *r;
    cr_assert_eq(bt_client_classify(204, NULL, 0, &r), 0);
    cr_assert_null(r);
    cr_assert_eq(bt_client_classify(429, NULL, 0, &r), 1);
    cr_assert_str_eq(r, "rate_limited");
    cr_assert_eq(bt_client_classify(500, NULL, 0, &r), 1);
    cr_assert_str_eq(r, "ingester_error");
    cr_assert_eq(bt_client_classify(-1, NULL, 0, &r), 1);
    cr_assert_eq(bt_client_classify(503, "x", 1, &r), 1);
    const char *old = "entry for stream '{label=\"x\"}' has timestamp too old: 1";
    cr_assert_eq(bt_client_classify(400, old, strlen(old), &r), 0);
    cr_assert_str_eq(r, "too_old", "the word label inside the stream must not win");
    const char *lab = "Error parsing labels '{a}' with error: x";
    cr_assert_eq(bt_client_classify(400, lab, strlen(lab), &r), 0);
    cr_assert_str_eq(r, "invalid_labels");
    cr_assert_eq(bt_client_classify(400, "line too long", 13, &r), 0);
    cr_assert_str_eq(r, "line_too_long");
    cr_assert_eq(bt_client_classify(400, "entry out of order", 18, &r), 0);
    cr_assert_str_eq(r, "out_of_order");
    cr_assert_eq(bt_client_classify(400, NULL, 0, &r), 0);
    cr_assert_str_eq(r, "http_4xx");
    const char *nocert = "<html><head><title>400 No required SSL certificate was sent</title>";
    cr_assert_eq(bt_client_classify(400, nocert, strlen(nocert), &r), 1);
    cr_assert_str_eq(r, "unauthorized");
    cr_assert_eq(bt_client_classify(401, NULL, 0, &r), 1);
    cr_assert_str_eq(r, "unauthorized");
    cr_assert_eq(bt_client_classify(403, NULL, 0, &r), 1);
    cr_assert_str_eq(r, "unauthorized");
    cr_assert_eq(bt_client_classify(413, "too old", 7, &r), 0);
    cr_assert_str_eq(r, "request_too_large");
    /* Only the given length is read: the body need not be NUL-terminated. */
    cr_assert_eq(bt_client_classify(400, "too oldXXXX", 3, &r), 0);
    cr_assert_str_eq(r, "http_4xx");
}

/* ---- the test Loki server itself ---------------------------------------------------------- */

#include <curl/curl.h>
#include <jansson.h>
#include <snappy-c.h>

#include "push/encode.h"
#include "util/buf.h"

static size_t collect(char *p, size_t size, size_t nmemb, void *ctx)
{
    bt_buf_add(ctx, p, size * nmemb);
    return size * nmemb;
}

/* Sends one request to the fake server; returns the status and the body in out. */
static long http(const char *method, const char *path, const char *ctype, const void *body,
                 size_t len, struct bt_buf *out)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", bt_fake_loki_port(loki), path);
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    char ct[128];
    snprintf(ct, sizeof(ct), "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    h = curl_slist_append(h, ct); /* "Content-Type:" alone removes curl's default */
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    bt_buf_reset(out);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out);
    long code = -1;
    if (curl_easy_perform(e) == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return code;
}

static void encoded(struct bt_batch *b, struct bt_buf *out)
{
    bt_buf_init(out, 1 << 24);
    cr_assert_eq(bt_encode_push(b, out, NULL), 0);
    b->outcome = BT_PUSH_ABANDONED;
    bt_batch_release(b);
}

Test(client, fake_loki_wants_content_type_and_valid_snappy)
{
    struct bt_buf body, out;
    encoded(batch("", "{job=\"a\"}", 1), &body);
    bt_buf_init(&out, 1 << 20);
    cr_assert_eq(http("POST", "/loki/api/v1/push", NULL, body.ptr, body.len, &out), 400);
    cr_assert_str_eq(bt_buf_str(&out), "mime: no media type");
    cr_assert_eq(http("POST", "/loki/api/v1/push", "application/x-protobuf", "garbage", 7, &out),
                 400);
    cr_assert_eq(bt_fake_loki_entries(loki), 0);
    cr_assert_eq(
        http("POST", "/loki/api/v1/push", "application/x-protobuf", body.ptr, body.len, &out), 204);
    cr_assert_eq(bt_fake_loki_entries(loki), 1);
    cr_assert_eq(bt_fake_loki_requests(loki), 3);
    cr_assert_eq(bt_fake_loki_status_count(loki, 400), 2);
    bt_buf_free(&body);
    bt_buf_free(&out);
}

Test(client, fake_loki_checks_labels_like_loki)
{
    char err[512];
    cr_assert_eq(bt_fake_loki_check_labels("{job=\"a\", x=\"b\\\"c\"}", err, sizeof(err)), 0);
    cr_assert_eq(bt_fake_loki_check_labels(" { job = 'a' , y=`z` , } ", err, sizeof(err)), 0);
    cr_assert_eq(bt_fake_loki_check_labels("{job=\"\"}", err, sizeof(err)), -EINVAL);
    cr_assert_str_eq(err, "error at least one label pair is required per stream");
    cr_assert_eq(bt_fake_loki_check_labels("{}", err, sizeof(err)), -EINVAL);
    cr_assert_eq(bt_fake_loki_check_labels("{job=a}", err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "Error parsing labels '{job=a}' with error:"), "%s", err);
    cr_assert_eq(bt_fake_loki_check_labels("{1a=\"x\"}", err, sizeof(err)), -EINVAL);
    cr_assert_eq(bt_fake_loki_check_labels("{a=\"x\"", err, sizeof(err)), -EINVAL);
    cr_assert_eq(bt_fake_loki_check_labels("{a=\"x\"} y", err, sizeof(err)), -EINVAL);
    cr_assert_eq(bt_fake_loki_check_labels("{a=\"\\q\"}", err, sizeof(err)), -EINVAL);
    cr_assert_eq(bt_fake_loki_check_labels("{a=\"x\", a=\"y\"}", err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "duplicate label name"), "%s", err);
}

Test(client, fake_loki_script_spec_is_consumed_in_order)
{
    cr_assert_eq(bt_fake_loki_script_spec(loki, "bogus"), -EINVAL);
    cr_assert_eq(bt_fake_loki_script_spec(loki, "500x2,429:retry-after=0,204,"
                                                "400:body=entry too old, really"),
                 -EINVAL, "a comma ends the body, so 'really' is a bad item");
    cr_assert_eq(bt_fake_loki_script_spec(loki, "500x2, 418:body=teapot,204"), 0);
    struct bt_buf body, out;
    encoded(batch("", "{job=\"a\"}", 1), &body);
    bt_buf_init(&out, 1 << 20);
    const long want[] = {500, 500, 418, 204, 204};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(
            http("POST", "/loki/api/v1/push", "application/x-protobuf", body.ptr, body.len, &out),
            want[i], "request %d", i);
    cr_assert_eq(bt_fake_loki_received(loki), 2, "only 2xx answers decode");
    cr_assert_eq(bt_fake_loki_entries(loki), 1, "the same entry twice is stored once");
    bt_buf_free(&body);
    bt_buf_free(&out);
}

Test(client, fake_loki_delay_item_delays_one_answer_with_default_status)
{
    bt_fake_loki_set_default(loki, 202);
    cr_assert_eq(bt_fake_loki_script_spec(loki, "delay=300,500:delay=10"), 0);
    struct bt_buf body, out;
    encoded(batch("", "{job=\"a\"}", 1), &body);
    bt_buf_init(&out, 1 << 20);
    int64_t t0 = bt_mono_ns();
    cr_assert_eq(
        http("POST", "/loki/api/v1/push", "application/x-protobuf", body.ptr, body.len, &out), 202);
    cr_assert_geq(bt_mono_ns() - t0, 300 * BT_NS_PER_MS);
    cr_assert_eq(
        http("POST", "/loki/api/v1/push", "application/x-protobuf", body.ptr, body.len, &out), 500);
    /* Script used up: the default again, without delay items left over. */
    cr_assert_eq(
        http("POST", "/loki/api/v1/push", "application/x-protobuf", body.ptr, body.len, &out), 202);
    cr_assert_eq(bt_fake_loki_received(loki), 2);
    cr_assert_eq(bt_fake_loki_entries(loki), 1, "a resent entry is a duplicate");
    bt_buf_free(&body);
    bt_buf_free(&out);
}

Test(client, fake_loki_control_endpoints_script_dump_stats_reset)
{
    struct bt_buf body, out;
    struct bt_batch *b = bt_batch_new("");
    struct bt_kv kv = {"trace", 5, "t\"1", 3};
    struct bt_entry e = {
        .ts_ns = 42, .line = "say \"hi\"\n\x01", .line_len = 10, .meta = &kv, .n_meta = 1};
    const char *canon = "{job=\"a\"}";
    cr_assert_eq(bt_batch_add(b, canon, strlen(canon), bt_hash64(canon, strlen(canon)), &e), 0);
    encoded(b, &body);
    bt_buf_init(&out, 1 << 20);
    cr_assert_eq(http("POST", "/control/script", "text/plain", "503,204", 7, &out), 200);
    cr_assert_eq(http("POST", "/control/script", "text/plain", "nonsense", 8, &out), 400);
    cr_assert_eq(
        http("POST", "/loki/api/v1/push", "application/x-protobuf", body.ptr, body.len, &out), 503);
    cr_assert_eq(
        http("POST", "/loki/api/v1/push", "application/x-protobuf", body.ptr, body.len, &out), 204);
    cr_assert_eq(http("GET", "/control/dump", NULL, NULL, 0, &out), 200);
    json_error_t jerr;
    json_t *j = json_loads(bt_buf_str(&out), JSON_DISABLE_EOF_CHECK, &jerr);
    cr_assert_not_null(j, "dump is not JSON: %s: %s", jerr.text, bt_buf_str(&out));
    cr_assert_str_eq(json_string_value(json_object_get(j, "line")), "say \"hi\"\n\x01");
    cr_assert_str_eq(json_string_value(json_object_get(j, "labels")), "{job=\"a\"}");
    cr_assert_str_eq(json_string_value(json_object_get(j, "tenant")), "");
    cr_assert_eq(json_integer_value(json_object_get(j, "ts")), 42);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "meta"), "trace")),
                     "t\"1");
    json_decref(j);
    cr_assert_eq(http("GET", "/control/stats", NULL, NULL, 0, &out), 200);
    j = json_loads(bt_buf_str(&out), 0, &jerr);
    cr_assert_not_null(j, "%s", bt_buf_str(&out));
    cr_assert_eq(json_integer_value(json_object_get(j, "requests")), 2);
    cr_assert_eq(json_integer_value(json_object_get(j, "entries")), 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "bytes")), 10);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "by_status"), "503")), 1);
    json_decref(j);
    cr_assert_eq(http("POST", "/control/default?status=500", "text/plain", "", 0, &out), 200);
    cr_assert_eq(
        http("POST", "/loki/api/v1/push", "application/x-protobuf", body.ptr, body.len, &out), 500);
    cr_assert_eq(http("POST", "/control/reset", "text/plain", "", 0, &out), 200);
    cr_assert_eq(bt_fake_loki_entries(loki), 0);
    cr_assert_eq(bt_fake_loki_requests(loki), 0);
    bt_buf_free(&body);
    bt_buf_free(&out);
}

Test(client, fake_loki_discard_mode_counts_without_storing)
{
    struct bt_fake_loki_opts o = {.discard = true, .quiet = true};
    struct bt_fake_loki *d = bt_fake_loki_start_opts(&o);
    cr_assert_not_null(d);
    cfg.url = (char *)bt_fake_loki_url(d);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 7));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(bt_fake_loki_entries(d), 7);
    cr_assert_eq(bt_fake_loki_bytes(d), b->bytes);
    struct bt_fake_entry e;
    cr_assert_eq(bt_fake_loki_entry(d, 0, &e), -ENOENT);
    bt_batch_release(b);
    bt_client_free(c);
    bt_fake_loki_stop(d);
}

#include <signal.h>
#include <sys/wait.h>

Test(client, standalone_fake_loki_prints_port_serves_and_exits_on_sigterm)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    char portfile[512];
    snprintf(portfile, sizeof(portfile), "%s/port", dir);
    int out[2];
    cr_assert_eq(pipe(out), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(BT_BINARY_DIR "/tests/bt-fake-loki", "bt-fake-loki", "--port", "0", "--port-file",
              portfile, "--quiet", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[128] = {0};
    size_t n = 0;
    while (n < sizeof(line) - 1 && !strchr(line, '\n')) {
        ssize_t r = read(out[0], line + n, sizeof(line) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(out[0]);
    unsigned port = 0;
    cr_assert_eq(sscanf(line, "listening on 127.0.0.1:%u", &port), 1, "stdout: %s", line);
    FILE *fp = fopen(portfile, "r");
    cr_assert_not_null(fp);
    unsigned fport = 0;
    cr_assert_eq(fscanf(fp, "%u", &fport), 1);
    fclose(fp);
    cr_assert_eq(fport, port);

    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/loki/api/v1/push", port);
    cfg.url = url;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c, batch("", "{job=\"a\"}", 2));
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    bt_batch_release(b);
    bt_client_free(c);

    cr_assert_eq(kill(pid, SIGTERM), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

/* ---- several requests in flight ---------------------------------------------------------- */

/* Decided batches in the order they came back; fails after 10 s without one. */
static void wait_n(struct bt_client *c, struct bt_batch **out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = wait_done(c, 10000);
        cr_assert_not_null(out[i], "batch %zu of %zu not decided within 10s", i + 1, n);
    }
}

struct order_check {
    const char *labels;
    int64_t last;
    size_t n;
    bool ok;
};

static void check_order(void *ctx, const struct bt_fake_entry *e)
{
    struct order_check *o = ctx;
    if (strcmp(e->labels, o->labels) != 0)
        return;
    if (o->n && e->ts_ns <= o->last)
        o->ok = false;
    o->last = e->ts_ns;
    o->n++;
}

/* Entries of stream labels stored in strictly increasing timestamp order; returns how many. */
static size_t stored_in_order(const char *labels)
{
    struct order_check o = {.labels = labels, .ok = true};
    bt_fake_loki_foreach(loki, check_order, &o);
    cr_assert(o.ok, "stream %s stored out of order", labels);
    return o.n;
}

Test(client, batches_of_different_streams_are_pushed_at_once)
{
    cfg.max_in_flight = 4;
    bt_fake_loki_set_delay(loki, 300);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    cr_assert_not_null(c);
    const char *streams[] = {"{app=\"a\"}", "{app=\"b\"}", "{app=\"c\"}", "{app=\"d\"}"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(bt_client_submit(c, batch("", streams[i], 10)), 0);
    struct bt_batch *d[4];
    wait_n(c, d, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(d[i]->outcome, BT_PUSH_OK);
        bt_batch_release(d[i]);
    }
    cr_assert_gt(bt_fake_loki_max_concurrent(loki), 1, "requests went one at a time");
    cr_assert_leq(bt_fake_loki_max_concurrent(loki), 4);
    cr_assert_eq(bt_fake_loki_entries(loki), 40);
    cr_assert_eq(bt_fake_loki_duplicates(loki), 0);
    cr_assert_eq(bt_client_pending(c), 0);
    cr_assert_eq(bt_client_backlog(c), 0);
    bt_client_free(c);
}

Test(client, batches_of_one_stream_never_overlap_and_keep_their_order)
{
    cfg.max_in_flight = 4;
    bt_fake_loki_set_delay(loki, 50);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    int64_t t0 = 1700000000000000000LL;
    for (int i = 0; i < 6; i++)
        cr_assert_eq(bt_client_submit(c, batch_at("", "{app=\"a\"}", 5, t0 + i * 100)), 0);
    struct bt_batch *d[6];
    wait_n(c, d, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(d[i]->outcome, BT_PUSH_OK);
        cr_assert_eq(d[i]->streams[0].entries[0].ts_ns, t0 + i * 100, "decided out of order");
        bt_batch_release(d[i]);
    }
    cr_assert_eq(bt_fake_loki_max_concurrent(loki), 1);
    cr_assert_eq(stored_in_order("{app=\"a\"}"), 30);
    bt_client_free(c);
}

Test(client, a_retried_request_is_not_overtaken_on_its_stream_while_others_go)
{
    cfg.max_in_flight = 4;
    cfg.min_backoff_ns = 1 * BT_NS_PER_SEC;
    cfg.max_backoff_ns = 2 * BT_NS_PER_SEC;
    cr_assert_eq(bt_fake_loki_script_spec(loki, "500"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    int64_t t0 = 1700000000000000000LL;
    struct bt_batch *a1 = batch_at("", "{app=\"a\"}", 3, t0);
    struct bt_batch *a2 = batch_at("", "{app=\"a\"}", 3, t0 + 10);
    struct bt_batch *b1 = batch_at("", "{app=\"b\"}", 3, t0);
    cr_assert_eq(bt_client_submit(c, a1), 0);
    cr_assert_eq(bt_fake_loki_wait_requests(loki, 1, 10000), 0); /* a1 got its 500 */
    cr_assert_eq(bt_client_submit(c, a2), 0);
    cr_assert_eq(bt_client_submit(c, b1), 0);
    struct bt_batch *d[3];
    wait_n(c, d, 3);
    cr_assert_eq(d[0], b1, "the other stream waited for the retry");
    cr_assert_eq(d[1], a1);
    cr_assert_eq(d[2], a2);
    cr_assert_eq(a1->attempts, 2);
    cr_assert_eq(a2->attempts, 1);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(d[i]->outcome, BT_PUSH_OK);
        bt_batch_release(d[i]);
    }
    cr_assert_eq(stored_in_order("{app=\"a\"}"), 6);
    cr_assert_eq(stored_in_order("{app=\"b\"}"), 3);
    cr_assert_eq(bt_fake_loki_duplicates(loki), 0);
    bt_client_free(c);
}

Test(client, stop_drains_every_request_in_flight)
{
    cfg.max_in_flight = 3;
    bt_fake_loki_set_delay(loki, 200);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    const char *streams[] = {"{app=\"a\"}", "{app=\"b\"}", "{app=\"c\"}", "{app=\"a\"}"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(bt_client_submit(c, batch_at("", streams[i], 2, 1000 * (int64_t)i)), 0);
    cr_assert_eq(bt_client_stop(c, bt_mono_ns() + 10 * BT_NS_PER_SEC), 0);
    struct bt_batch *d[4];
    wait_n(c, d, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(d[i]->outcome, BT_PUSH_OK);
        bt_batch_release(d[i]);
    }
    cr_assert_eq(bt_fake_loki_entries(loki), 8);
    bt_client_free(c);
}

Test(client, stop_at_the_deadline_abandons_every_request_in_flight)
{
    cfg.max_in_flight = 3;
    cr_assert_eq(bt_fake_loki_script_spec(loki, "hang,hang,hang"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    const char *streams[] = {"{app=\"a\"}", "{app=\"b\"}", "{app=\"c\"}", "{app=\"d\"}"};
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(bt_client_submit(c, batch("", streams[i], 1)), 0);
    cr_assert_eq(bt_fake_loki_wait_requests(loki, 3, 10000), 0);
    cr_assert_eq(bt_client_stop(c, bt_mono_ns() + 100 * BT_NS_PER_MS), 4);
    struct bt_batch *d[4];
    wait_n(c, d, 4);
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(d[i]->outcome, BT_PUSH_ABANDONED);
        bt_batch_release(d[i]);
    }
    bt_client_free(c);
}

/* Polls bt_client_backlog until it equals want (the push thread updates it); false after 5 s. */
static bool backlog_becomes(struct bt_client *c, size_t want)
{
    for (int i = 0; i < 500; i++) {
        if (bt_client_backlog(c) == want)
            return true;
        usleep(10000);
    }
    return false;
}

Test(client, backlog_counts_a_window_excess_and_batches_held_by_their_streams)
{
    cfg.max_in_flight = 4;
    cr_assert_eq(bt_fake_loki_script_spec(loki, "hang,hang,hang,hang"), 0);
    struct bt_client *c = bt_client_new(&cfg, metrics);
    /* One stream: the second and third batch can only wait behind the first. */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(bt_client_submit(c, batch_at("", "{app=\"a\"}", 1, 10 * i)), 0);
    cr_assert_eq(bt_fake_loki_wait_requests(loki, 1, 10000), 0);
    cr_assert(backlog_becomes(c, 2), "backlog %zu, want 2", bt_client_backlog(c));
    cr_assert_eq(bt_client_pending(c), 3);
    bt_client_stop(c, bt_mono_ns());
    struct bt_batch *d[3];
    wait_n(c, d, 3);
    for (int i = 0; i < 3; i++)
        bt_batch_release(d[i]);
    bt_client_free(c);
    bt_fake_loki_reset(loki);

    /* Other streams fill the window: 4 in flight and one more is a backlog of 2. */
    cr_assert_eq(bt_fake_loki_script_spec(loki, "hang,hang,hang,hang"), 0);
    c = bt_client_new(&cfg, metrics);
    const char *streams[] = {"{app=\"a\"}", "{app=\"b\"}", "{app=\"c\"}", "{app=\"d\"}",
                             "{app=\"e\"}"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(bt_client_submit(c, batch("", streams[i], 1)), 0);
    cr_assert_eq(bt_fake_loki_wait_requests(loki, 4, 10000), 0);
    cr_assert(backlog_becomes(c, 1), "backlog %zu, want 1", bt_client_backlog(c));
    cr_assert_eq(bt_client_submit(c, batch("", streams[4], 1)), 0);
    cr_assert_eq(bt_client_backlog(c), 2);
    bt_client_stop(c, bt_mono_ns());
    struct bt_batch *e[5];
    wait_n(c, e, 5);
    for (int i = 0; i < 5; i++)
        bt_batch_release(e[i]);
    bt_client_free(c);
}
