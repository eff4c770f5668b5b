/* The oauth2 client-credentials grant, against a token endpoint in the test and the test Loki
 * server: the token is fetched, cached, refreshed before expiry and after a 401. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "core/entry.h"
#include "core/metrics.h"
#include "fake_loki.h"
#include "push/batch.h"
#include "push/client.h"
#include "push/oauth2.h"
#include "tiny_http.h"
#include "tmpdir.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"

/* What the token endpoint does and saw. */
struct token_server {
    int fetches;
    int expires_in;     /* 0: no expires_in in the answer */
    bool creds_in_body; /* refuse Basic credentials, want them in the form */
    bool fail;          /* answer 500 */
    char secret[64];    /* the client secret it accepts */
    char last_body[1024];
    char last_auth[256];
};

static struct token_server ts;
static struct bt_tiny_http *tok_srv;
static struct bt_fake_loki *loki;
static struct bt_metrics *metrics;
static struct bt_client_config cfg;
static char token_url[128], dir[256];

static void token_endpoint(void *ctx, const struct bt_tiny_req *rq, struct bt_tiny_resp *rs)
{
    struct token_server *t = ctx;
    snprintf(t->last_body, sizeof(t->last_body), "%s", rq->body);
    snprintf(t->last_auth, sizeof(t->last_auth), "%s", rq->authorization);
    if (t->fail) {
        rs->status = 500;
        snprintf(rs->body, sizeof(rs->body), "{\"error\":\"server_error\"}");
        return;
    }
    char want_basic[256], want_body[256];
    /* base64("id:" secret) is computed by the test that sets the secret. */
    snprintf(want_basic, sizeof(want_basic), "%s", t->secret);
    snprintf(want_body, sizeof(want_body), "client_secret=%s", t->secret);
    bool ok = t->creds_in_body ? strstr(rq->body, "client_id=id") && strstr(rq->body, want_body)
                               : strcmp(rq->authorization, want_basic) == 0;
    if (strcmp(rq->method, "POST") != 0 || !strstr(rq->body, "grant_type=client_credentials") ||
        !strstr(rq->content_type, "application/x-www-form-urlencoded") || !ok) {
        rs->status = 401;
        snprintf(rs->body, sizeof(rs->body), "{\"error\":\"invalid_client\"}");
        return;
    }
    t->fetches++;
    if (t->expires_in)
        snprintf(rs->body, sizeof(rs->body),
                 "{\"access_token\":\"tok-%d\",\"token_type\":\"bearer\",\"expires_in\":%d}",
                 t->fetches, t->expires_in);
    else
        snprintf(rs->body, sizeof(rs->body), "{\"access_token\":\"tok-%d\"}", t->fetches);
}

static void setup(void)
{
    bt_log_set_level(BT_LOG_ERROR);
    memset(&ts, 0, sizeof(ts));
    /* The endpoint compares the Authorization header with this: base64("id:s3cret"). */
    snprintf(ts.secret, sizeof(ts.secret), "Basic aWQ6czNjcmV0");
    ts.expires_in = 3600;
    tok_srv = bt_tiny_http_start(token_endpoint, &ts);
    cr_assert_not_null(tok_srv);
    snprintf(token_url, sizeof(token_url), "http://127.0.0.1:%u/oauth/token",
             bt_tiny_http_port(tok_srv));
    loki = bt_fake_loki_start();
    cr_assert_not_null(loki);
    metrics = bt_metrics_new();
    memset(&cfg, 0, sizeof(cfg));
    cfg.url = (char *)bt_fake_loki_url(loki);
    cfg.min_backoff_ns = 10 * BT_NS_PER_MS;
    cfg.max_backoff_ns = 40 * BT_NS_PER_MS;
    cfg.max_retries = 3;
    cfg.timeout_ns = 5 * BT_NS_PER_SEC;
    cfg.oauth2.set = true;
    cfg.oauth2.client_id = "id";
    cfg.oauth2.client_secret = "s3cret";
    cfg.oauth2.token_url = token_url;
    dir[0] = '\0';
}

static void teardown(void)
{
    bt_fake_loki_stop(loki);
    bt_tiny_http_stop(tok_srv);
    bt_metrics_free(metrics);
    if (dir[0])
        bt_tmpdir_remove(dir);
}

TestSuite(oauth2, .init = setup, .fini = teardown, .timeout = 30);

static struct bt_batch *one_batch(void)
{
    struct bt_batch *b = bt_batch_new("");
    const char *canon = "{job=\"a\"}";
    struct bt_entry e = {.ts_ns = 1700000000000000000LL + (int64_t)bt_mono_ns() % 1000000,
                         .line = "hello",
                         .line_len = 5};
    cr_assert_eq(bt_batch_add(b, canon, strlen(canon), bt_hash64(canon, strlen(canon)), &e), 0);
    return b;
}

static struct bt_batch *push(struct bt_client *c)
{
    struct bt_batch *b = one_batch();
    cr_assert_eq(bt_client_submit(c, b), 0);
    int64_t end = bt_mono_ns() + 10 * BT_NS_PER_SEC;
    for (;;) {
        struct bt_batch *d = bt_client_take_done(c);
        if (d)
            return d;
        cr_assert_lt(bt_mono_ns(), end, "no decision within 10s");
        struct pollfd p = {.fd = bt_client_notify_fd(c), .events = POLLIN};
        poll(&p, 1, 100);
    }
}

static void last_auth_is(const char *want)
{
    char v[256];
    cr_assert(bt_fake_loki_last_header(loki, "Authorization", v, sizeof(v)));
    cr_assert_str_eq(v, want);
}

Test(oauth2, token_is_fetched_once_and_sent_as_bearer)
{
    const char *scopes[] = {"logs:write", "openid"};
    struct bt_header params[] = {{"audience", "loki"}};
    cfg.oauth2.scopes = (char **)scopes;
    cfg.oauth2.n_scopes = 2;
    cfg.oauth2.params = params;
    cfg.oauth2.n_params = 1;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    for (int i = 0; i < 3; i++) {
        struct bt_batch *b = push(c);
        cr_assert_eq(b->outcome, BT_PUSH_OK);
        bt_batch_release(b);
        last_auth_is("Bearer tok-1");
    }
    cr_assert_eq(ts.fetches, 1, "the token is cached");
    cr_assert(strstr(ts.last_body, "scope=logs%3Awrite%20openid"), "%s", ts.last_body);
    cr_assert(strstr(ts.last_body, "audience=loki"), "%s", ts.last_body);
    cr_assert_not(strstr(ts.last_body, "client_secret"), "credentials go in the header");
    bt_client_free(c);
}

Test(oauth2, token_near_expiry_is_refreshed)
{
    ts.expires_in = 11; /* refreshed 10 s before expiry: after 1 s */
    struct bt_client *c = bt_client_new(&cfg, metrics);
    bt_batch_release(push(c));
    last_auth_is("Bearer tok-1");
    bt_batch_release(push(c));
    cr_assert_eq(ts.fetches, 1);
    usleep(1200 * 1000);
    bt_batch_release(push(c));
    last_auth_is("Bearer tok-2");
    cr_assert_eq(ts.fetches, 2);
    bt_client_free(c);
}

Test(oauth2, loki_401_fetches_a_new_token_and_retries_once)
{
    struct bt_client *c = bt_client_new(&cfg, metrics);
    bt_batch_release(push(c));
    cr_assert_eq(bt_fake_loki_script_spec(loki, "401"), 0);
    struct bt_batch *b = push(c);
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(b->attempts, 2);
    last_auth_is("Bearer tok-2");
    cr_assert_eq(ts.fetches, 2);
    bt_batch_release(b);
    /* A second 401 in a row is retried with backoff (refused credentials keep the batch) and
     * dropped as unauthorized once the retries are spent. */
    cr_assert_eq(bt_fake_loki_script_spec(loki, "401x4"), 0);
    b = push(c);
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_str_eq(b->reason, "unauthorized");
    cr_assert_eq(b->attempts, 4, "the renewal, then max_retries attempts with backoff");
    bt_batch_release(b);
    bt_client_free(c);
}

Test(oauth2, credentials_move_to_the_body_when_the_header_is_refused)
{
    ts.creds_in_body = true;
    snprintf(ts.secret, sizeof(ts.secret), "s3cret");
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c);
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    last_auth_is("Bearer tok-1");
    cr_assert(strstr(ts.last_body, "client_id=id"));
    cr_assert_str_eq(ts.last_auth, "");
    bt_batch_release(b);
    bt_client_free(c);
}

Test(oauth2, failing_token_endpoint_is_retried_like_a_transport_error)
{
    ts.fail = true;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    struct bt_batch *b = push(c);
    cr_assert_eq(b->outcome, BT_PUSH_DROPPED);
    cr_assert_str_eq(b->reason, "ingester_error");
    cr_assert_eq(b->attempts, 3, "retried up to max_retries");
    cr_assert_eq(bt_fake_loki_requests(loki), 0, "nothing is sent without a token");
    bt_batch_release(b);
    bt_client_free(c);
}

Test(oauth2, new_secret_in_file_fetches_a_new_token)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "secret", "s3cret\n", 7), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/secret", dir);
    cfg.oauth2.client_secret = NULL;
    cfg.oauth2.client_secret_file = path;
    struct bt_client *c = bt_client_new(&cfg, metrics);
    bt_batch_release(push(c));
    bt_batch_release(push(c));
    cr_assert_eq(ts.fetches, 1);
    /* base64("id:other") */
    snprintf(ts.secret, sizeof(ts.secret), "Basic aWQ6b3RoZXI=");
    cr_assert_eq(bt_tmpdir_write(dir, "secret", "other", 5), 0);
    struct bt_batch *b = push(c);
    cr_assert_eq(b->outcome, BT_PUSH_OK);
    cr_assert_eq(ts.fetches, 2);
    last_auth_is("Bearer tok-2");
    bt_batch_release(b);
    bt_client_free(c);
}

Test(oauth2, answer_without_token_is_an_error_naming_it)
{
    struct bt_oauth2_config oc = cfg.oauth2;
    ts.fail = false;
    struct bt_oauth2 *o = bt_oauth2_new(&oc, BT_NS_PER_SEC, NULL, NULL);
    char hv[256], err[512];
    cr_assert_eq(bt_oauth2_header(o, hv, sizeof(hv), err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(hv, "Bearer tok-1");
    cr_assert_eq(bt_oauth2_fetches(o), 1);
    oc.token_url = "http://127.0.0.1:1/none";
    bt_oauth2_invalidate(o);
    cr_assert_lt(bt_oauth2_header(o, hv, sizeof(hv), err, sizeof(err)), 0);
    cr_assert(strstr(err, "oauth2: token request to http://127.0.0.1:1/none failed"), "%s", err);
    bt_oauth2_free(o);
}
