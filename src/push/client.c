/*
 * client: one push thread per Loki URL.
 *
 * Hand-off: the loop thread appends to `queue` under `mu`; the push thread takes one batch at a
 * time (`current`), decides it, and appends it to `done`, writing the eventfd. Stop is a
 * deadline: until then queued batches are still pushed (with retries); at the deadline `abort`
 * is raised, which cancels the transfer in progress (progress callback plus a multi-handle
 * wakeup, so a server that never answers cannot hold shutdown) and interrupts a retry sleep.
 *
 * The transfer runs through a curl multi handle holding the one reused easy handle, so
 * connections stay alive between requests and curl_multi_poll can be woken at once by stop.
 */
#include "push/client.h"
#include "core/caps.h"
#include "push/batch.h"
#include "config/config.h"
#include "push/encode.h"
#include "push/curltls.h"
#include "push/oauth2.h"
#include "core/metrics.h"
#include "util/buf.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/secretfile.h"
#include "util/timeutil.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define COMPONENT "client"
#define MAX_ERR_BODY 1024          /* bytes of Loki's answer kept, as promtail */
#define MAX_BODY ((size_t)1 << 30) /* hard cap on one encoded request */
#define MAX_SECRET_FILE ((size_t)64 << 10)

#define DROPPED_ENTRIES_HELP "Entries dropped because Loki refused them or retries ran out."
#define DROPPED_BYTES_HELP "Line bytes dropped because Loki refused them or retries ran out."
#define RETRIES_HELP "Push attempts that failed and were retried."

struct ring {
    struct bt_batch **v;
    size_t head, n, cap;
};

struct bt_client {
    const struct bt_client_config *cfg;
    struct bt_metrics *m;
    char name[256];
    char host[256];     /* host[:port] of the URL: the metrics' host label */
    char host_esc[512]; /* escaped for the exposition format */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ring queue, done;
    struct bt_batch *current;
    bool stopping; /* no new work accepted */
    int abort;     /* deadline passed: cancel and abandon (atomic) */
    bool thread_started;
    pthread_t thread;
    int efd;
    size_t pending_bytes, pending; /* atomics, read without the lock */
    size_t abandoned_inflight;

    /* Push thread only. */
    CURL *curl;
    CURLM *multi;
    struct curl_slist *proxy_headers;
    struct bt_oauth2 *oauth2; /* NULL without an oauth2 block */
    /* tls_config.server_name: the URL with that host, a connect-to rule to the real host, and
     * the real Host header (empty when not used). */
    char *sni_url;
    struct curl_slist *connect_to;
    char host_header[300];
    struct bt_buf body;
    char resp[MAX_ERR_BODY + 1];
    size_t resp_len;
    int retry_after_s;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode last_res; /* the last transfer's result, for failure reasons */
    uint64_t rng;

    struct bt_series *encoded_bytes, *sent_bytes, *sent_entries;
    struct bt_hmap tenants_seen; /* push thread: tenants whose series exist */
};

/* ---- small helpers -------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int ring_push(struct ring *r, struct bt_batch *b)
{
    if (r->n == r->cap) {
        size_t n = r->cap ? r->cap * 2 : 16;
        struct bt_batch **nv = malloc(n * sizeof(*nv));
        if (!nv)
            return -ENOMEM;
        for (size_t i = 0; i < r->n; i++)
            nv[i] = r->v[(r->head + i) % r->cap];
        free(r->v);
        r->v = nv;
        r->cap = n;
        r->head = 0;
    }
    r->v[(r->head + r->n) % r->cap] = b;
    r->n++;
    return 0;
}

static struct bt_batch *ring_pop(struct ring *r)
{
    if (!r->n)
        return NULL;
    struct bt_batch *b = r->v[r->head];
    r->head = (r->head + 1) % r->cap;
    r->n--;
    return b;
}

static size_t load_size(const size_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void add_size(size_t *p, size_t v)
{
    __atomic_add_fetch(p, v, __ATOMIC_RELAXED);
}

static void sub_size(size_t *p, size_t v)
{
    __atomic_sub_fetch(p, v, __ATOMIC_RELAXED);
}

static bool aborted(const struct bt_client *c)
{
    return __atomic_load_n(&c->abort, __ATOMIC_ACQUIRE) != 0;
}

static uint64_t rng_next(struct bt_client *c)
{
    /* xorshift64*: jitter only, no need for more. */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 2685821657736338717ULL;
}

/* ---- classification ------------------------------------------------------------------------ */

int bt_client_classify(int status, const char *body, size_t body_len, const char **reason)
{
    const char *r = NULL;
    int retry = 0;
    if (status >= 200 && status < 300) {
        r = NULL;
    } else if (status == 429) {
        retry = 1;
        r = "rate_limited";
    } else if (status < 0 || (status >= 500 && status < 600)) {
        retry = 1;
        r = "ingester_error";
    } else if (status == 401 || status == 403) {
        /* Refused credentials say nothing about the batch: a wrong or rotated password, token
         * or tenant is fixed by a reload, and the lines must still be there then. promtail
         * drops these; max_retries still bounds how long a batch waits. */
        retry = 1;
        r = "unauthorized";
    } else if (status == 413) {
        r = "request_too_large";
    } else {
        char msg[MAX_ERR_BODY + 1];
        size_t n = body ? (body_len < MAX_ERR_BODY ? body_len : MAX_ERR_BODY) : 0;
        if (n)
            memcpy(msg, body, n);
        msg[n] = '\0';
        /* Order matters: messages about old or new timestamps quote the stream's labels, which
         * may contain the word "label". */
        if (status == 400 && strcasestr(msg, "SSL certificate")) {
            /* nginx answers a missing or refused client certificate (ssl_verify_client) with
             * a 400 page, where a Go server fails the handshake: the same wrong credentials. */
            retry = 1;
            r = "unauthorized";
        } else if (strcasestr(msg, "too old"))
            r = "too_old";
        else if (strcasestr(msg, "too new"))
            r = "too_new";
        else if (strcasestr(msg, "max entry size") || strcasestr(msg, "line too long"))
            r = "line_too_long";
        else if (strcasestr(msg, "out of order") || strcasestr(msg, "too far behind"))
            r = "out_of_order";
        else if (strcasestr(msg, "maximum active stream limit"))
            r = "stream_limited";
        else if (strcasestr(msg, "error parsing labels") || strcasestr(msg, "label"))
            r = "invalid_labels";
        else
            r = "http_4xx";
    }
    if (reason)
        *reason = r;
    return retry;
}

/* ---- metrics -------------------------------------------------------------------------------- */

static struct bt_series *tenant_counter(struct bt_client *c, const char *name, const char *help,
                                        const char *tenant, const char *reason)
{
    char t[512], labels[1200];
    bt_metrics_escape(t, sizeof(t), tenant);
    if (reason)
        snprintf(labels, sizeof(labels), "host=\"%s\",reason=\"%s\",tenant=\"%s\"", c->host_esc,
                 reason, t);
    else
        snprintf(labels, sizeof(labels), "host=\"%s\",tenant=\"%s\"", c->host_esc, t);
    return bt_metrics_counter(c->m, name, help, labels);
}

#define MAX_TENANTS_SEEN 10000

/* Creates every drop and retry series of a tenant at 0 the first time it is pushed, as promtail
 * does, so rate() over them works before the first drop. */
static void init_tenant_series(struct bt_client *c, const char *tenant)
{
    static const char *const reasons[] = {"rate_limited",   "too_old",      "too_new",
                                          "line_too_long",  "out_of_order", "invalid_labels",
                                          "stream_limited", "http_4xx",     "request_too_large",
                                          "ingester_error", "unauthorized"};
    size_t len = strlen(tenant);
    if (!c->m || c->tenants_seen.n >= MAX_TENANTS_SEEN ||
        bt_hmap_get(&c->tenants_seen, tenant, len))
        return;
    if (bt_hmap_put(&c->tenants_seen, tenant, len, (void *)1, NULL))
        return;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        tenant_counter(c, "bpftail_dropped_entries_total", DROPPED_ENTRIES_HELP, tenant,
                       reasons[i]);
        tenant_counter(c, "bpftail_dropped_bytes_total", DROPPED_BYTES_HELP, tenant, reasons[i]);
    }
    tenant_counter(c, "bpftail_batch_retries_total", RETRIES_HELP, tenant, NULL);
}

static void observe_duration(struct bt_client *c, int status, double secs)
{
    if (!c->m)
        return;
    char labels[600];
    snprintf(labels, sizeof(labels), "host=\"%s\",status_code=\"%d\"", c->host_esc, status);
    bt_histogram_observe(bt_metrics_histogram(c->m, "bpftail_request_duration_seconds",
                                              "Duration of push requests to Loki.", labels, NULL,
                                              0),
                         secs);
}

/* ---- one HTTP attempt ----------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
    struct bt_client *c = ctx;
    size_t n = size * nmemb;
    size_t room = MAX_ERR_BODY - c->resp_len;
    size_t take = n < room ? n : room;
    memcpy(c->resp + c->resp_len, p, take);
    c->resp_len += take;
    c->resp[c->resp_len] = '\0';
    return n; /* the rest is read and ignored */
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ctx)
{
    struct bt_client *c = ctx;
    size_t n = size * nmemb;
    static const char key[] = "retry-after:";
    if (n > sizeof(key) - 1 && strncasecmp(p, key, sizeof(key) - 1) == 0) {
        char v[32];
        size_t vl = n - (sizeof(key) - 1);
        if (vl >= sizeof(v))
            vl = sizeof(v) - 1;
        memcpy(v, p + sizeof(key) - 1, vl);
        v[vl] = '\0';
        char *end;
        long s = strtol(v, &end, 10);
        while (*end == ' ' || *end == '\r' || *end == '\n')
            end++;
        /* Only delay-seconds; an HTTP-date is ignored. */
        if (end != v && *end == '\0' && s > 0 && s < 86400)
            c->retry_after_s = (int)s;
    }
    return n;
}

static int on_progress(void *ctx, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    return aborted(ctx) ? 1 : 0;
}

static int add_header(struct curl_slist **h, const char *name, const char *value)
{
    char line[16384];
    if (snprintf(line, sizeof(line), "%s: %s", name, value) >= (int)sizeof(line))
        return -E2BIG;
    struct curl_slist *n = curl_slist_append(*h, line);
    if (!n)
        return -ENOMEM;
    *h = n;
    return 0;
}

static bool reserved_header(const char *name)
{
    static const char *const own[] = {"Content-Type",  "User-Agent",     "X-Scope-OrgID",
                                      "Authorization", "Content-Length", "Host"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strcasecmp(name, own[i]) == 0)
            return true;
    return false;
}

/* "Authorization: <type> <credentials>", the credentials file read at each request as
 * Prometheus does. 0 or -errno. */
static int authorization_header(struct bt_client *c, struct curl_slist **h)
{
    const struct bt_client_config *cfg = c->cfg;
    char *cred = malloc(MAX_SECRET_FILE + 8);
    if (!cred)
        return -ENOMEM;
    int rc = 0;
    if (cfg->auth_credentials_file) {
        rc = bt_read_secret(cfg->auth_credentials_file, cred, MAX_SECRET_FILE + 8);
        if (rc) {
            char q[512];
            BT_ERROR(COMPONENT, "cannot read authorization credentials_file",
                     "host=%s path=%s err=%s", c->host,
                     bt_logq(q, sizeof(q), cfg->auth_credentials_file), strerror(-rc));
            snprintf(c->errbuf, sizeof(c->errbuf), "cannot read authorization credentials_file");
        }
    } else {
        snprintf(cred, MAX_SECRET_FILE + 8, "%s",
                 cfg->auth_credentials ? cfg->auth_credentials : "");
    }
    if (!rc && strpbrk(cred, "\r\n"))
        rc = -EINVAL;
    if (!rc) {
        const char *type = cfg->auth_type && cfg->auth_type[0] ? cfg->auth_type : "Bearer";
        size_t n = strlen(type) + strlen(cred) + 2;
        char *hv = malloc(n);
        if (!hv) {
            rc = -ENOMEM;
        } else {
            snprintf(hv, n, "%s %s", type, cred);
            rc = add_header(h, "Authorization", hv);
            free(hv);
        }
    }
    memset(cred, 0, MAX_SECRET_FILE + 8);
    free(cred);
    return rc;
}

/* Builds the per-request headers (bearer files are re-read each time). 0 or -errno. */
static int build_headers(struct bt_client *c, const struct bt_batch *b, struct curl_slist **h)
{
    const struct bt_client_config *cfg = c->cfg;
    int rc = add_header(h, "Content-Type", "application/x-protobuf");
    rc = rc ? rc : add_header(h, "User-Agent", "bpftail/" BT_VERSION);
    rc = rc ? rc : add_header(h, "Expect", ""); /* no 100-continue round trip */
    if (!rc && b->tenant && b->tenant[0])
        rc = add_header(h, "X-Scope-OrgID", b->tenant);
    if (!rc && c->host_header[0])
        rc = add_header(h, "Host", c->host_header);
    if (!rc && (cfg->bearer_token || cfg->bearer_token_file)) {
        char tok[MAX_SECRET_FILE + 8], hv[MAX_SECRET_FILE + 16];
        if (cfg->bearer_token_file) {
            rc = bt_read_secret(cfg->bearer_token_file, tok, sizeof(tok));
            if (rc) {
                char q[512];
                BT_ERROR(COMPONENT, "cannot read bearer_token_file", "host=%s path=%s err=%s",
                         c->host, bt_logq(q, sizeof(q), cfg->bearer_token_file), strerror(-rc));
            }
        } else {
            snprintf(tok, sizeof(tok), "%s", cfg->bearer_token);
        }
        if (!rc) {
            snprintf(hv, sizeof(hv), "Bearer %s", tok);
            rc = add_header(h, "Authorization", hv);
        }
    }
    if (!rc && cfg->auth_set)
        rc = authorization_header(c, h);
    if (!rc && c->oauth2) {
        char hv[8300], err[CURL_ERROR_SIZE];
        rc = bt_oauth2_header(c->oauth2, hv, sizeof(hv), err, sizeof(err));
        if (rc && rc != -ECANCELED)
            snprintf(c->errbuf, sizeof(c->errbuf), "%s", err);
        if (!rc)
            rc = add_header(h, "Authorization", hv);
    }
    for (size_t i = 0; !rc && i < cfg->n_headers; i++)
        if (!reserved_header(cfg->headers[i].name))
            rc = add_header(h, cfg->headers[i].name, cfg->headers[i].value);
    return rc;
}

/* Sets the basic-auth credentials (the password file is read at use). 0 or -errno. */
static int set_basic_auth(struct bt_client *c)
{
    const struct bt_client_config *cfg = c->cfg;
    if (!cfg->basic_username && !cfg->basic_password && !cfg->basic_password_file &&
        !cfg->basic_username_file)
        return 0;
    char pw[MAX_SECRET_FILE + 8], user[4096];
    pw[0] = '\0';
    snprintf(user, sizeof(user), "%s", cfg->basic_username ? cfg->basic_username : "");
    if (cfg->basic_username_file) {
        int rc = bt_read_secret(cfg->basic_username_file, user, sizeof(user));
        if (rc) {
            char q[512];
            BT_ERROR(COMPONENT, "cannot read basic_auth username_file", "host=%s path=%s err=%s",
                     c->host, bt_logq(q, sizeof(q), cfg->basic_username_file), strerror(-rc));
            return rc;
        }
    }
    if (cfg->basic_password_file) {
        int rc = bt_read_secret(cfg->basic_password_file, pw, sizeof(pw));
        if (rc) {
            char q[512];
            BT_ERROR(COMPONENT, "cannot read basic_auth password_file", "host=%s path=%s err=%s",
                     c->host, bt_logq(q, sizeof(q), cfg->basic_password_file), strerror(-rc));
            return rc;
        }
    } else if (cfg->basic_password) {
        snprintf(pw, sizeof(pw), "%s", cfg->basic_password);
    }
    curl_easy_setopt(c->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c->curl, CURLOPT_USERNAME, user);
    curl_easy_setopt(c->curl, CURLOPT_PASSWORD, pw); /* curl copies it */
    return 0;
}

/* Runs the prepared transfer to its end, or until stop's deadline cancels it. Returns the HTTP
 * status, -1 for a transport error (message in errbuf), or -ECANCELED. */
static int run_transfer(struct bt_client *c)
{
    if (curl_multi_add_handle(c->multi, c->curl) != CURLM_OK) {
        snprintf(c->errbuf, sizeof(c->errbuf), "curl_multi_add_handle failed");
        return -1;
    }
    int running = 1;
    bool cancelled = false;
    while (running) {
        if (curl_multi_perform(c->multi, &running) != CURLM_OK || !running)
            break;
        if (aborted(c)) {
            cancelled = true;
            break;
        }
        curl_multi_poll(c->multi, NULL, 0, 1000, NULL); /* stop wakes it with multi_wakeup */
    }
    CURLcode res = CURLE_OK;
    bool finished = false;
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(c->multi, &left)))
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->curl) {
            res = msg->data.result;
            finished = true;
        }
    curl_multi_remove_handle(c->multi, c->curl);
    c->last_res = finished ? res : CURLE_FAILED_INIT;
    if (cancelled || res == CURLE_ABORTED_BY_CALLBACK)
        return -ECANCELED;
    if (finished && res == CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
        return code > 0 ? (int)code : -1;
    }
    if (!c->errbuf[0])
        snprintf(c->errbuf, sizeof(c->errbuf), "%s",
                 curl_easy_strerror(finished ? res : CURLE_FAILED_INIT));
    return -1;
}

/* One POST of c->body. Returns the HTTP status, -1 for a transport error, or -ECANCELED when
 * stop aborted it. */
static int post_once(struct bt_client *c, const struct bt_batch *b)
{
    struct curl_slist *h = NULL;
    int status = -1;
    c->resp_len = 0;
    c->resp[0] = '\0';
    c->retry_after_s = 0;
    c->errbuf[0] = '\0';
    int rc = build_headers(c, b, &h);
    if (!rc)
        rc = set_basic_auth(c);
    if (rc == -ECANCELED) {
        status = -ECANCELED;
        goto out;
    }
    if (rc) {
        /* A failed token fetch or an unreadable credentials file is retried like a transport
         * error, as promtail does when its round tripper fails. */
        if (!c->errbuf[0])
            snprintf(c->errbuf, sizeof(c->errbuf), "cannot prepare request: %s", strerror(-rc));
        goto out;
    }
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, c->body.ptr);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->body.len);
    status = run_transfer(c);
out:
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    return status;
}

static int oauth2_cancel(void *ctx)
{
    return aborted(ctx);
}

/* tls_config.server_name, as Go's tls.Config.ServerName: the TLS handshake (SNI and the
 * certificate check) uses server_name while the connection goes to the URL's host and the
 * Host header names it. curl takes the TLS name from the URL, so the URL gets server_name as
 * its host and CURLOPT_CONNECT_TO points that name at the real host. Plain http ignores it. */
static int set_server_name(struct bt_client *c, CURL *e, const char *sn)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *url = NULL;
    int rc = u ? 0 : -ENOMEM;
    if (!rc && (curl_url_set(u, CURLUPART_URL, c->cfg->url, 0) != CURLUE_OK ||
                curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
                curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
                curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK))
        rc = -EINVAL;
    if (rc || strcasecmp(scheme, "https") != 0 || strcasecmp(host, sn) == 0)
        goto out;
    char rule[600];
    snprintf(rule, sizeof(rule), "%s:%s:%s:%s", sn, port, host, port);
    if (curl_url_set(u, CURLUPART_HOST, sn, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        rc = -EINVAL;
        goto out;
    }
    struct curl_slist *l = curl_slist_append(NULL, rule);
    c->sni_url = strdup(url);
    if (!l || !c->sni_url) {
        curl_slist_free_all(l);
        rc = -ENOMEM;
        goto out;
    }
    c->connect_to = l;
    if (strcmp(port, "443") == 0)
        snprintf(c->host_header, sizeof(c->host_header), "%s", host);
    else
        snprintf(c->host_header, sizeof(c->host_header), "%s:%s", host, port);
    curl_easy_setopt(e, CURLOPT_URL, c->sni_url);
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to);
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(url);
    curl_url_cleanup(u);
    return rc;
}

static int setup_curl(struct bt_client *c)
{
    const struct bt_client_config *cfg = c->cfg;
    c->curl = curl_easy_init();
    c->multi = curl_multi_init();
    if (!c->curl || !c->multi)
        return -ENOMEM;
    CURL *e = c->curl;
    curl_easy_setopt(e, CURLOPT_URL, cfg->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    /* Go's client speaks HTTP/2 only over TLS (ALPN), never h2c to a plain http URL. */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     (long)(cfg->enable_http2 ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_1_1));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    /* Go follows at most 10 redirects; 307/308 repeat the POST, 301-303 turn it into a GET,
     * as curl does by default. Credentials are not sent to another host. */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, cfg->follow_redirects ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, c);
    if (cfg->timeout_ns > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(cfg->timeout_ns / BT_NS_PER_MS));
    /* Like Go's client, the environment's proxy variables count only when asked for. */
    if (cfg->proxy_url)
        curl_easy_setopt(e, CURLOPT_PROXY, cfg->proxy_url);
    else if (!cfg->proxy_from_environment)
        curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (cfg->no_proxy)
        curl_easy_setopt(e, CURLOPT_NOPROXY, cfg->no_proxy);
    for (size_t i = 0; i < cfg->n_proxy_connect_headers; i++)
        if (add_header(&c->proxy_headers, cfg->proxy_connect_headers[i].name,
                       cfg->proxy_connect_headers[i].value))
            return -ENOMEM;
    if (c->proxy_headers) {
        curl_easy_setopt(e, CURLOPT_HEADEROPT, (long)CURLHEADER_SEPARATE);
        curl_easy_setopt(e, CURLOPT_PROXYHEADER, c->proxy_headers);
    }
    bt_curl_set_tls(e, &cfg->tls);
    if (cfg->tls.server_name && cfg->tls.server_name[0] &&
        set_server_name(c, e, cfg->tls.server_name))
        return -ENOMEM;
    if (cfg->oauth2.set &&
        !(c->oauth2 = bt_oauth2_new(&cfg->oauth2, cfg->timeout_ns, oauth2_cancel, c)))
        return -ENOMEM;
    return 0;
}

/* ---- deciding one batch --------------------------------------------------------------------- */

/* Sleeps ns unless stop's deadline passes first. Returns true if interrupted. */
static bool sleep_interruptible(struct bt_client *c, int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t t = (int64_t)ts.tv_sec * BT_NS_PER_SEC + ts.tv_nsec + ns;
    ts.tv_sec = (time_t)(t / BT_NS_PER_SEC);
    ts.tv_nsec = (long)(t % BT_NS_PER_SEC);
    pthread_mutex_lock(&c->mu);
    while (!aborted(c))
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
            break;
    bool stop = aborted(c);
    pthread_mutex_unlock(&c->mu);
    return stop;
}

static void first_line(const char *s, char *out, size_t outlen)
{
    size_t n = strcspn(s, "\r\n");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static void drop_batch(struct bt_client *c, struct bt_batch *b, const char *reason)
{
    b->outcome = BT_PUSH_DROPPED;
    b->reason = reason;
    bt_counter_add(
        tenant_counter(c, "bpftail_dropped_entries_total", DROPPED_ENTRIES_HELP, b->tenant, reason),
        (double)b->n_entries);
    bt_counter_add(
        tenant_counter(c, "bpftail_dropped_bytes_total", DROPPED_BYTES_HELP, b->tenant, reason),
        (double)b->bytes);
    char line[MAX_ERR_BODY + 1], q[2 * MAX_ERR_BODY + 8], tq[512];
    first_line(b->status <= 0 ? c->errbuf : c->resp, line, sizeof(line));
    BT_ERROR(COMPONENT, "batch dropped",
             "host=%s tenant=%s status=%d reason=%s entries=%zu bytes=%zu attempts=%u error=%s",
             c->host, bt_logq(tq, sizeof(tq), b->tenant), b->status, reason, b->n_entries, b->bytes,
             b->attempts, bt_logq(q, sizeof(q), line));
}

/* Backoff state as dskit's: delays jittered in [min, max), doubling up to max_period. */
struct backoff {
    int64_t next_min, next_max, max_period;
    int n;
};

static int64_t backoff_next(struct bt_client *c, struct backoff *bo)
{
    int64_t d = bo->next_min;
    if (bo->next_min < bo->next_max)
        d += (int64_t)(rng_next(c) % (uint64_t)(bo->next_max - bo->next_min));
    if (bo->next_max < bo->max_period) {
        bo->next_min = bo->next_min * 2 < bo->max_period ? bo->next_min * 2 : bo->max_period;
        bo->next_max = bo->next_max * 2 < bo->max_period ? bo->next_max * 2 : bo->max_period;
    }
    return d;
}

enum after { TRY_AGAIN, DECIDED };

/* Why a transfer failed without an HTTP answer, from curl's result: "tls" (handshake,
 * verification, certificates), "proxy", "connect", "timeout" or "transport". */
static const char *transport_reason(CURLcode res)
{
    switch (res) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED: return "tls";
    case CURLE_PROXY:
    case CURLE_COULDNT_RESOLVE_PROXY: return "proxy";
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST: return "connect";
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    default: return "transport";
    }
}

/* Counts a failed attempt in bpftail_push_failures_total{host,reason}: every attempt, retried
 * or final, so a wrong certificate or password shows up before any batch is decided. */
static void count_failure(struct bt_client *c, const char *reason)
{
    if (!c->m)
        return;
    char labels[700];
    snprintf(labels, sizeof(labels), "host=\"%s\",reason=\"%s\"", c->host_esc, reason);
    bt_counter_inc(bt_metrics_counter(c->m, "bpftail_push_failures_total",
                                      "Push attempts that failed, by reason (retried or not).",
                                      labels));
}

/* Handles a failed attempt: drops b when the status is final or the retries are spent,
 * otherwise sleeps the backoff (abandoning b if stop's deadline interrupts the sleep). */
static enum after after_failure(struct bt_client *c, struct bt_batch *b, struct backoff *bo,
                                int status)
{
    const char *reason;
    int retry = bt_client_classify(status, c->resp, c->resp_len, &reason);
    const char *why = status < 0 ? transport_reason(c->last_res) : reason;
    count_failure(c, why);
    if (status == 429 && c->cfg->drop_rate_limited_batches) {
        drop_batch(c, b, "rate_limited");
        return DECIDED;
    }
    if (!retry) {
        drop_batch(c, b, reason);
        return DECIDED;
    }
    bt_counter_inc(tenant_counter(c, "bpftail_batch_retries_total", RETRIES_HELP, b->tenant, NULL));
    bo->n++;
    int64_t delay = backoff_next(c, bo);
    if ((status == 429 || status == 503) && c->retry_after_s > 0) {
        int64_t ra = (int64_t)c->retry_after_s * BT_NS_PER_SEC;
        if (ra > delay)
            delay = ra < bo->max_period ? ra : bo->max_period;
    }
    if (c->cfg->max_retries > 0 && bo->n >= c->cfg->max_retries) {
        drop_batch(c, b, reason); /* rate_limited after a 429, else ingester_error */
        return DECIDED;
    }
    char line[MAX_ERR_BODY + 1], q[2 * MAX_ERR_BODY + 8], d[32];
    first_line(status < 0 ? c->errbuf : c->resp, line, sizeof(line));
    BT_WARN(COMPONENT, "push failed, will retry",
            "host=%s status=%d reason=%s attempt=%u backoff=%s error=%s", c->host, status, why,
            b->attempts, bt_format_duration(d, sizeof(d), delay), bt_logq(q, sizeof(q), line));
    if (sleep_interruptible(c, delay)) {
        b->outcome = BT_PUSH_ABANDONED;
        return DECIDED;
    }
    return TRY_AGAIN;
}

/* Encodes and pushes b until it is decided: sets b->outcome (and reason, status, attempts). */
static void push_batch(struct bt_client *c, struct bt_batch *b)
{
    const struct bt_client_config *cfg = c->cfg;
    size_t raw;
    init_tenant_series(c, b->tenant);
    int rc = bt_encode_push(b, &c->body, &raw);
    if (rc) {
        snprintf(c->errbuf, sizeof(c->errbuf), "cannot encode batch: %s", strerror(-rc));
        b->status = 0;
        drop_batch(c, b, rc == -E2BIG ? "request_too_large" : "ingester_error");
        return;
    }
    b->encoded_bytes = c->body.len;
    bt_counter_add(c->encoded_bytes, (double)c->body.len);

    int64_t minp = cfg->min_backoff_ns > 0 ? cfg->min_backoff_ns : 500 * BT_NS_PER_MS;
    int64_t maxp = cfg->max_backoff_ns > 0 ? cfg->max_backoff_ns : 300 * BT_NS_PER_SEC;
    if (maxp < minp)
        maxp = minp;
    struct backoff bo = {minp, 2 * minp < maxp ? 2 * minp : maxp, maxp, 0};
    bool token_renewed = false;
    for (;;) {
        if (aborted(c)) {
            b->outcome = BT_PUSH_ABANDONED;
            return;
        }
        int64_t t0 = bt_mono_ns();
        int status = post_once(c, b);
        if (status == -ECANCELED) {
            b->outcome = BT_PUSH_ABANDONED;
            return;
        }
        b->attempts++;
        b->status = status;
        observe_duration(c, status, (double)(bt_mono_ns() - t0) / 1e9);
        /* A 401 with an oauth2 token means the token went stale before its expiry (revoked,
         * server restarted): fetch a new one and try once more at once. */
        if (status == 401 && c->oauth2 && !token_renewed) {
            token_renewed = true;
            bt_oauth2_invalidate(c->oauth2);
            continue;
        }
        if (status >= 200 && status < 300) {
            b->outcome = BT_PUSH_OK;
            bt_counter_add(c->sent_bytes, (double)c->body.len);
            bt_counter_add(c->sent_entries, (double)b->n_entries);
            return;
        }
        if (after_failure(c, b, &bo, status) == DECIDED)
            return;
    }
}

/* ---- thread and queue ------------------------------------------------------------------------ */

/* Caller holds mu. */
static void put_done(struct bt_client *c, struct bt_batch *b)
{
    if (ring_push(&c->done, b)) {
        /* Cannot hand it back: free it without acking (positions stay, data is re-read). */
        BT_ERROR(COMPONENT, "out of memory on the done queue, batch forgotten", "host=%s", c->host);
        b->outcome = BT_PUSH_ABANDONED;
        bt_batch_release(b);
        return;
    }
    uint64_t one = 1;
    if (write(c->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        BT_WARN(COMPONENT, "eventfd write failed", "err=%s", strerror(errno));
}

static void *push_thread(void *arg)
{
    struct bt_client *c = arg;
    /* Capabilities are per thread: a push thread needs none beyond reading credential files,
     * whatever the loop thread still holds while it loads BPF programs. */
    bt_caps_drop_except(bt_caps_keep_logs());
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->queue.n && !c->stopping)
            pthread_cond_wait(&c->cv, &c->mu);
        if (!c->queue.n || aborted(c))
            break;
        struct bt_batch *b = ring_pop(&c->queue);
        c->current = b;
        pthread_mutex_unlock(&c->mu);
        push_batch(c, b);
        pthread_mutex_lock(&c->mu);
        c->current = NULL;
        sub_size(&c->pending, 1);
        sub_size(&c->pending_bytes, b->bytes);
        if (b->outcome == BT_PUSH_ABANDONED)
            c->abandoned_inflight++;
        put_done(c, b);
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

static void parse_host(struct bt_client *c)
{
    snprintf(c->host, sizeof(c->host), "%s", c->cfg->url);
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, c->cfg->url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        if (curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port)
            snprintf(c->host, sizeof(c->host), "%s:%s", host, port);
        else
            snprintf(c->host, sizeof(c->host), "%s", host);
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    bt_metrics_escape(c->host_esc, sizeof(c->host_esc), c->host);
    snprintf(c->name, sizeof(c->name), "%s",
             c->cfg->name && c->cfg->name[0] ? c->cfg->name : c->host);
}

struct bt_client *bt_client_new(const struct bt_client_config *cfg, struct bt_metrics *m)
{
    if (!cfg || !cfg->url || !cfg->url[0]) {
        errno = EINVAL;
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        errno = EIO;
        return NULL;
    }
    struct bt_client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    int err = 0;
    c->cfg = cfg;
    c->m = m;
    c->efd = -1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    bt_buf_init(&c->body, MAX_BODY);
    bt_hmap_init(&c->tenants_seen);
    c->rng = (uint64_t)bt_mono_ns() ^ ((uint64_t)(uintptr_t)c << 17) ^ 0x9e3779b97f4a7c15ULL;
    parse_host(c);
    if (m) {
        char l[600];
        snprintf(l, sizeof(l), "host=\"%s\"", c->host_esc);
        c->encoded_bytes = bt_metrics_counter(m, "bpftail_encoded_bytes_total",
                                              "Bytes encoded (compressed) for Loki.", l);
        c->sent_bytes = bt_metrics_counter(m, "bpftail_sent_bytes_total",
                                           "Bytes (compressed) accepted by Loki.", l);
        c->sent_entries =
            bt_metrics_counter(m, "bpftail_sent_entries_total", "Entries accepted by Loki.", l);
    }
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->efd < 0) {
        err = errno;
        goto fail;
    }
    if (setup_curl(c)) {
        err = ENOMEM;
        goto fail;
    }
    err = pthread_create(&c->thread, NULL, push_thread, c);
    if (err)
        goto fail;
    c->thread_started = true;
    return c;
fail:
    bt_client_free(c);
    errno = err;
    return NULL;
}

int bt_client_submit(struct bt_client *c, struct bt_batch *b)
{
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    if (c->stopping) {
        b->outcome = BT_PUSH_ABANDONED;
        put_done(c, b);
        rc = -ESHUTDOWN;
    } else if (ring_push(&c->queue, b)) {
        /* Ownership is ours either way: forget the batch without acking, so its lines are
         * read again after a restart rather than counted as delivered. */
        BT_ERROR(COMPONENT, "out of memory queueing a batch, batch forgotten", "host=%s", c->host);
        b->outcome = BT_PUSH_ABANDONED;
        bt_batch_release(b);
        rc = -ENOMEM;
    } else {
        add_size(&c->pending, 1);
        add_size(&c->pending_bytes, b->bytes);
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int bt_client_notify_fd(const struct bt_client *c)
{
    return c->efd;
}

struct bt_batch *bt_client_take_done(struct bt_client *c)
{
    pthread_mutex_lock(&c->mu);
    struct bt_batch *b = ring_pop(&c->done);
    if (!c->done.n) {
        uint64_t v;
        if (read(c->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
            BT_WARN(COMPONENT, "eventfd read failed", "err=%s", strerror(errno));
    }
    pthread_mutex_unlock(&c->mu);
    return b;
}

size_t bt_client_pending_bytes(const struct bt_client *c)
{
    return load_size(&c->pending_bytes);
}

size_t bt_client_pending(const struct bt_client *c)
{
    return load_size(&c->pending);
}

size_t bt_client_stop(struct bt_client *c, int64_t deadline_mono_ns)
{
    size_t abandoned = 0;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cv);
    struct timespec ts = {(time_t)(deadline_mono_ns / BT_NS_PER_SEC),
                          (long)(deadline_mono_ns % BT_NS_PER_SEC)};
    while ((c->queue.n || c->current) && c->thread_started && bt_mono_ns() < deadline_mono_ns)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
            break;
    if (c->queue.n || c->current) {
        __atomic_store_n(&c->abort, 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&c->cv);
    }
    struct bt_batch *b;
    while ((b = ring_pop(&c->queue))) {
        b->outcome = BT_PUSH_ABANDONED;
        sub_size(&c->pending, 1);
        sub_size(&c->pending_bytes, b->bytes);
        put_done(c, b);
        abandoned++;
    }
    pthread_mutex_unlock(&c->mu);
    if (c->multi)
        curl_multi_wakeup(c->multi);
    if (c->thread_started) {
        pthread_join(c->thread, NULL);
        c->thread_started = false;
    }
    pthread_mutex_lock(&c->mu);
    abandoned += c->abandoned_inflight;
    c->abandoned_inflight = 0;
    pthread_mutex_unlock(&c->mu);
    if (abandoned)
        BT_WARN(COMPONENT, "stopped with undelivered batches", "host=%s abandoned=%zu", c->host,
                abandoned);
    return abandoned;
}

void bt_client_free(struct bt_client *c)
{
    if (!c)
        return;
    bt_client_stop(c, bt_mono_ns());
    struct bt_batch *b;
    while ((b = ring_pop(&c->done)))
        bt_batch_release(b);
    free(c->queue.v);
    free(c->done.v);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->proxy_headers);
    curl_slist_free_all(c->connect_to);
    free(c->sni_url);
    bt_oauth2_free(c->oauth2);
    bt_buf_free(&c->body);
    bt_hmap_free(&c->tenants_seen);
    if (c->efd >= 0)
        close(c->efd);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const char *bt_client_name(const struct bt_client *c)
{
    return c->name;
}

const char *bt_client_host(const struct bt_client *c)
{
    return c->host;
}
