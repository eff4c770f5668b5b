/*
 * client: one push thread per Loki URL, up to max_in_flight requests at once.
 *
 * Hand-off: the loop thread appends to `queue` under `mu`; the push thread moves batches from
 * the queue into free request slots (`slots`, max_in_flight of them), in queue order except
 * that a batch waits while the gate (push/gate.h) says an undecided request carries one of its
 * streams. Each slot owns an easy handle of one curl multi handle (connections are pooled and
 * kept alive between requests), its encoded body and its own backoff: a slot waiting out a
 * retry keeps its streams held, so a failing request is never overtaken on its streams, while
 * batches of other streams go on. A decided batch is appended to `done`, writing the eventfd.
 * The order in which batches come back does not matter: positions move only past the longest
 * released prefix of each source (core/ack.h).
 *
 * Stop is a deadline: until then queued batches are still pushed (with retries); at the
 * deadline `abort` is raised, which cancels every transfer (progress callback plus a
 * multi-handle wakeup, so a server that never answers cannot hold shutdown) and every retry
 * wait, and everything undecided comes back ABANDONED.
 */
#include "push/client.h"
#include "core/caps.h"
#include "push/batch.h"
#include "config/config.h"
#include "push/encode.h"
#include "push/curltls.h"
#include "push/gate.h"
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

/* Backoff state as dskit's: delays jittered in [min, max), doubling up to max_period. */
struct backoff {
    int64_t next_min, next_max, max_period;
    int n;
};

/* One request slot of the push thread. */
struct req {
    struct bt_client *c;
    struct bt_batch *b; /* NULL: free */
    CURL *curl;
    struct curl_slist *hdrs;
    struct bt_buf body;
    char resp[MAX_ERR_BODY + 1];
    size_t resp_len;
    int retry_after_s;
    char errbuf[CURL_ERROR_SIZE];
    CURLcode last_res; /* the last transfer's result, for failure reasons */
    struct backoff bo;
    bool fresh;   /* taken from the queue, not encoded yet */
    bool running; /* its transfer is in the multi handle */
    bool token_renewed;
    int64_t t0;       /* start of the attempt */
    int64_t retry_at; /* monotonic time of the next attempt when not running */
};

struct bt_client {
    const struct bt_client_config *cfg;
    struct bt_metrics *m;
    char name[256];
    char host[256];     /* host[:port] of the URL: the metrics' host label */
    char host_esc[512]; /* escaped for the exposition format */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct bt_batch **queue; /* submitted, not started, in order */
    size_t qn, qcap;
    struct ring done;
    struct bt_gate gate; /* streams of the batches in slots */
    size_t n_active;     /* slots holding a batch */
    size_t blocked;      /* queued batches the gate holds back (atomic, read without mu) */
    bool stopping;       /* no new work accepted */
    int abort;           /* deadline passed: cancel and abandon (atomic) */
    bool thread_started;
    pthread_t thread;
    int efd;
    size_t pending_bytes, pending; /* atomics, read without the lock */
    size_t abandoned_inflight;

    /* Push thread only (the slots' batches are set under mu). */
    struct req *slots;
    size_t n_slots;
    CURLM *multi;
    struct curl_slist *proxy_headers;
    struct bt_oauth2 *oauth2; /* NULL without an oauth2 block */
    /* tls_config.server_name: the URL with that host, a connect-to rule to the real host, and
     * the real Host header (empty when not used). */
    char *sni_url;
    struct curl_slist *connect_to;
    char host_header[300];
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
    struct req *r = ctx;
    size_t n = size * nmemb;
    size_t room = MAX_ERR_BODY - r->resp_len;
    size_t take = n < room ? n : room;
    memcpy(r->resp + r->resp_len, p, take);
    r->resp_len += take;
    r->resp[r->resp_len] = '\0';
    return n; /* the rest is read and ignored */
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ctx)
{
    struct req *r = ctx;
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
            r->retry_after_s = (int)s;
    }
    return n;
}

static int on_progress(void *ctx, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    return aborted(((struct req *)ctx)->c) ? 1 : 0;
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
static int authorization_header(struct bt_client *c, struct req *r, struct curl_slist **h)
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
            snprintf(r->errbuf, sizeof(r->errbuf), "cannot read authorization credentials_file");
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
static int build_headers(struct bt_client *c, struct req *r, const struct bt_batch *b,
                         struct curl_slist **h)
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
        rc = authorization_header(c, r, h);
    if (!rc && c->oauth2) {
        char hv[8300], err[CURL_ERROR_SIZE];
        rc = bt_oauth2_header(c->oauth2, hv, sizeof(hv), err, sizeof(err));
        if (rc && rc != -ECANCELED)
            snprintf(r->errbuf, sizeof(r->errbuf), "%s", err);
        if (!rc)
            rc = add_header(h, "Authorization", hv);
    }
    for (size_t i = 0; !rc && i < cfg->n_headers; i++)
        if (!reserved_header(cfg->headers[i].name))
            rc = add_header(h, cfg->headers[i].name, cfg->headers[i].value);
    return rc;
}

/* Sets the basic-auth credentials (the password file is read at use). 0 or -errno. */
static int set_basic_auth(struct bt_client *c, CURL *e)
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
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(e, CURLOPT_USERNAME, user);
    curl_easy_setopt(e, CURLOPT_PASSWORD, pw); /* curl copies it */
    return 0;
}

/* Starts one POST of r->body: headers, then the transfer joins the multi handle. Returns 0
 * when it runs, else the attempt's status at once: -1 for a failure to prepare it (retried like
 * a transport error, as promtail does when its round tripper fails; message in errbuf), or
 * -ECANCELED when stop aborted a token fetch. */
static int start_attempt(struct bt_client *c, struct req *r)
{
    r->resp_len = 0;
    r->resp[0] = '\0';
    r->retry_after_s = 0;
    r->errbuf[0] = '\0';
    r->last_res = CURLE_FAILED_INIT;
    r->t0 = bt_mono_ns();
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
    int rc = build_headers(c, r, r->b, &r->hdrs);
    if (!rc)
        rc = set_basic_auth(c, r->curl);
    if (rc == -ECANCELED)
        return -ECANCELED;
    if (rc) {
        if (!r->errbuf[0])
            snprintf(r->errbuf, sizeof(r->errbuf), "cannot prepare request: %s", strerror(-rc));
        return -1;
    }
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, r->body.ptr);
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
    if (curl_multi_add_handle(c->multi, r->curl) != CURLM_OK) {
        snprintf(r->errbuf, sizeof(r->errbuf), "curl_multi_add_handle failed");
        return -1;
    }
    r->running = true;
    return 0;
}

/* Takes r's transfer out of the multi handle once it is done (or cancelled) and returns the
 * HTTP status, -1 for a transport error (message in errbuf), or -ECANCELED. */
static int end_attempt(struct bt_client *c, struct req *r, bool finished, CURLcode res)
{
    curl_multi_remove_handle(c->multi, r->curl);
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
    r->running = false;
    r->last_res = finished ? res : CURLE_FAILED_INIT;
    if (!finished || res == CURLE_ABORTED_BY_CALLBACK)
        return aborted(c) ? -ECANCELED : -1;
    if (res == CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &code);
        return code > 0 ? (int)code : -1;
    }
    if (!r->errbuf[0])
        snprintf(r->errbuf, sizeof(r->errbuf), "%s", curl_easy_strerror(res));
    return -1;
}

static int oauth2_cancel(void *ctx)
{
    return aborted(ctx);
}

/* tls_config.server_name, as Go's tls.Config.ServerName: the TLS handshake (SNI and the
 * certificate check) uses server_name while the connection goes to the URL's host and the
 * Host header names it. curl takes the TLS name from the URL, so the URL gets server_name as
 * its host and CURLOPT_CONNECT_TO points that name at the real host. Plain http ignores it. */
static int set_server_name(struct bt_client *c, const char *sn)
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
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(url);
    curl_url_cleanup(u);
    return rc;
}

/* What every request shares: the multi handle, proxy headers, the TLS server name and the
 * OAuth2 token source. 0 or -ENOMEM. */
static int setup_curl(struct bt_client *c)
{
    const struct bt_client_config *cfg = c->cfg;
    c->multi = curl_multi_init();
    if (!c->multi)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->n_proxy_connect_headers; i++)
        if (add_header(&c->proxy_headers, cfg->proxy_connect_headers[i].name,
                       cfg->proxy_connect_headers[i].value))
            return -ENOMEM;
    if (cfg->tls.server_name && cfg->tls.server_name[0] && set_server_name(c, cfg->tls.server_name))
        return -ENOMEM;
    if (cfg->oauth2.set &&
        !(c->oauth2 = bt_oauth2_new(&cfg->oauth2, cfg->timeout_ns, oauth2_cancel, c)))
        return -ENOMEM;
    return 0;
}

/* The easy handle of one request slot. 0 or -ENOMEM. */
static int setup_easy(struct bt_client *c, struct req *r)
{
    const struct bt_client_config *cfg = c->cfg;
    r->c = c;
    bt_buf_init(&r->body, MAX_BODY);
    CURL *e = r->curl = curl_easy_init();
    if (!e)
        return -ENOMEM;
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_URL, c->sni_url ? c->sni_url : cfg->url);
    if (c->connect_to)
        curl_easy_setopt(e, CURLOPT_CONNECT_TO, c->connect_to);
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
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, r);
    if (cfg->timeout_ns > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(cfg->timeout_ns / BT_NS_PER_MS));
    /* Like Go's client, the environment's proxy variables count only when asked for. */
    if (cfg->proxy_url)
        curl_easy_setopt(e, CURLOPT_PROXY, cfg->proxy_url);
    else if (!cfg->proxy_from_environment)
        curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (cfg->no_proxy)
        curl_easy_setopt(e, CURLOPT_NOPROXY, cfg->no_proxy);
    if (c->proxy_headers) {
        curl_easy_setopt(e, CURLOPT_HEADEROPT, (long)CURLHEADER_SEPARATE);
        curl_easy_setopt(e, CURLOPT_PROXYHEADER, c->proxy_headers);
    }
    bt_curl_set_tls(e, &cfg->tls);
    return 0;
}

/* ---- deciding one batch --------------------------------------------------------------------- */

static void first_line(const char *s, char *out, size_t outlen)
{
    size_t n = strcspn(s, "\r\n");
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static void drop_batch(struct bt_client *c, struct req *r, const char *reason)
{
    struct bt_batch *b = r->b;
    b->outcome = BT_PUSH_DROPPED;
    b->reason = reason;
    bt_counter_add(
        tenant_counter(c, "bpftail_dropped_entries_total", DROPPED_ENTRIES_HELP, b->tenant, reason),
        (double)b->n_entries);
    bt_counter_add(
        tenant_counter(c, "bpftail_dropped_bytes_total", DROPPED_BYTES_HELP, b->tenant, reason),
        (double)b->bytes);
    char line[MAX_ERR_BODY + 1], q[2 * MAX_ERR_BODY + 8], tq[512];
    first_line(b->status <= 0 ? r->errbuf : r->resp, line, sizeof(line));
    BT_ERROR(COMPONENT, "batch dropped",
             "host=%s tenant=%s status=%d reason=%s entries=%zu bytes=%zu attempts=%u error=%s",
             c->host, bt_logq(tq, sizeof(tq), b->tenant), b->status, reason, b->n_entries, b->bytes,
             b->attempts, bt_logq(q, sizeof(q), line));
}

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

/* Handles a failed attempt: drops the batch when the status is final or the retries are
 * spent, otherwise sets the slot's next attempt after the backoff. The slot keeps its streams
 * held meanwhile, so no later batch of them overtakes it. */
static enum after after_failure(struct bt_client *c, struct req *r, int status)
{
    struct bt_batch *b = r->b;
    const char *reason;
    int retry = bt_client_classify(status, r->resp, r->resp_len, &reason);
    const char *why = status < 0 ? transport_reason(r->last_res) : reason;
    count_failure(c, why);
    if (status == 429 && c->cfg->drop_rate_limited_batches) {
        drop_batch(c, r, "rate_limited");
        return DECIDED;
    }
    if (!retry) {
        drop_batch(c, r, reason);
        return DECIDED;
    }
    bt_counter_inc(tenant_counter(c, "bpftail_batch_retries_total", RETRIES_HELP, b->tenant, NULL));
    struct backoff *bo = &r->bo;
    bo->n++;
    int64_t delay = backoff_next(c, bo);
    if ((status == 429 || status == 503) && r->retry_after_s > 0) {
        int64_t ra = (int64_t)r->retry_after_s * BT_NS_PER_SEC;
        if (ra > delay)
            delay = ra < bo->max_period ? ra : bo->max_period;
    }
    if (c->cfg->max_retries > 0 && bo->n >= c->cfg->max_retries) {
        drop_batch(c, r, reason); /* rate_limited after a 429, else ingester_error */
        return DECIDED;
    }
    char line[MAX_ERR_BODY + 1], q[2 * MAX_ERR_BODY + 8], d[32];
    first_line(status < 0 ? r->errbuf : r->resp, line, sizeof(line));
    BT_WARN(COMPONENT, "push failed, will retry",
            "host=%s status=%d reason=%s attempt=%u backoff=%s error=%s", c->host, status, why,
            b->attempts, bt_format_duration(d, sizeof(d), delay), bt_logq(q, sizeof(q), line));
    r->retry_at = bt_mono_ns() + delay;
    return TRY_AGAIN;
}

/* Encodes a batch just taken into slot r and readies its first attempt. DECIDED if the batch
 * cannot be encoded (dropped). */
static enum after begin_batch(struct bt_client *c, struct req *r)
{
    const struct bt_client_config *cfg = c->cfg;
    struct bt_batch *b = r->b;
    size_t raw;
    init_tenant_series(c, b->tenant);
    int rc = bt_encode_push(b, &r->body, &raw);
    if (rc) {
        snprintf(r->errbuf, sizeof(r->errbuf), "cannot encode batch: %s", strerror(-rc));
        b->status = 0;
        drop_batch(c, r, rc == -E2BIG ? "request_too_large" : "ingester_error");
        return DECIDED;
    }
    b->encoded_bytes = r->body.len;
    bt_counter_add(c->encoded_bytes, (double)r->body.len);
    int64_t minp = cfg->min_backoff_ns > 0 ? cfg->min_backoff_ns : 500 * BT_NS_PER_MS;
    int64_t maxp = cfg->max_backoff_ns > 0 ? cfg->max_backoff_ns : 300 * BT_NS_PER_SEC;
    if (maxp < minp)
        maxp = minp;
    r->bo = (struct backoff){minp, 2 * minp < maxp ? 2 * minp : maxp, maxp, 0};
    r->token_renewed = false;
    r->retry_at = 0;
    return TRY_AGAIN;
}

/* The outcome of one attempt of slot r (status as end_attempt returns it). */
static enum after on_status(struct bt_client *c, struct req *r, int status)
{
    struct bt_batch *b = r->b;
    if (status == -ECANCELED) {
        b->outcome = BT_PUSH_ABANDONED;
        return DECIDED;
    }
    b->attempts++;
    b->status = status;
    observe_duration(c, status, (double)(bt_mono_ns() - r->t0) / 1e9);
    /* A 401 with an oauth2 token means the token went stale before its expiry (revoked,
     * server restarted): fetch a new one and try once more at once. */
    if (status == 401 && c->oauth2 && !r->token_renewed) {
        r->token_renewed = true;
        bt_oauth2_invalidate(c->oauth2);
        r->retry_at = 0;
        return TRY_AGAIN;
    }
    if (status >= 200 && status < 300) {
        b->outcome = BT_PUSH_OK;
        bt_counter_add(c->sent_bytes, (double)r->body.len);
        bt_counter_add(c->sent_entries, (double)b->n_entries);
        return DECIDED;
    }
    return after_failure(c, r, status);
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

/* Hands slot r's decided batch back and frees the slot and the batch's streams. */
static void finish_slot(struct bt_client *c, struct req *r)
{
    struct bt_batch *b = r->b;
    pthread_mutex_lock(&c->mu);
    bt_gate_release(&c->gate, b);
    r->b = NULL;
    c->n_active--;
    sub_size(&c->pending, 1);
    sub_size(&c->pending_bytes, b->bytes);
    if (b->outcome == BT_PUSH_ABANDONED)
        c->abandoned_inflight++;
    put_done(c, b);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Caller holds mu. 0 or -ENOMEM. */
static int queue_push(struct bt_client *c, struct bt_batch *b)
{
    if (c->qn == c->qcap) {
        size_t n = c->qcap ? c->qcap * 2 : 16;
        struct bt_batch **nq = realloc(c->queue, n * sizeof(*nq));
        if (!nq)
            return -ENOMEM;
        c->queue = nq;
        c->qcap = n;
    }
    c->queue[c->qn++] = b;
    return 0;
}

static void queue_remove(struct bt_client *c, size_t i)
{
    memmove(&c->queue[i], &c->queue[i + 1], (c->qn - i - 1) * sizeof(c->queue[0]));
    c->qn--;
}

/* Moves batches the gate lets go from the queue into free slots. Caller holds mu. Returns
 * how many it moved. */
static size_t fill_slots(struct bt_client *c)
{
    size_t moved = 0;
    while (c->n_active < c->n_slots && c->qn && !aborted(c)) {
        size_t i = bt_gate_pick(&c->gate, c->queue, c->qn);
        if (i == c->qn || bt_gate_hold(&c->gate, c->queue[i]))
            break;
        struct req *r = NULL;
        for (size_t k = 0; k < c->n_slots && !r; k++)
            if (!c->slots[k].b)
                r = &c->slots[k];
        r->b = c->queue[i];
        r->fresh = true;
        queue_remove(c, i);
        c->n_active++;
        moved++;
    }
    /* With a slot free, whatever is left waits for its streams, not for a slot. */
    __atomic_store_n(&c->blocked, c->n_active < c->n_slots ? c->qn : 0, __ATOMIC_RELAXED);
    return moved;
}

/* Starts what is due: new batches are encoded, attempts whose backoff ended are sent. Returns
 * the poll timeout in ms until the next due attempt (capped at 1 s). */
static int start_due(struct bt_client *c)
{
    int64_t now = bt_mono_ns(), next = now + BT_NS_PER_SEC;
    for (size_t k = 0; k < c->n_slots; k++) {
        struct req *r = &c->slots[k];
        if (!r->b || r->running)
            continue;
        if (r->fresh) {
            r->fresh = false;
            if (begin_batch(c, r) == DECIDED) {
                finish_slot(c, r);
                continue;
            }
        }
        /* A failure to prepare the request counts as an attempt and backs off. */
        while (r->b && !r->running && r->retry_at <= now && !aborted(c)) {
            int st = start_attempt(c, r);
            if (st == 0)
                break;
            if (on_status(c, r, st) == DECIDED)
                finish_slot(c, r);
            now = bt_mono_ns();
        }
        if (r->b && !r->running && r->retry_at < next)
            next = r->retry_at;
    }
    int64_t ms = (next - bt_mono_ns() + BT_NS_PER_MS - 1) / BT_NS_PER_MS;
    return ms < 0 ? 0 : (int)ms;
}

/* Collects finished transfers and decides or reschedules their batches. */
static void collect_done(struct bt_client *c)
{
    int left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct req *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (!r || !r->running)
            continue;
        int st = end_attempt(c, r, true, msg->data.result);
        if (on_status(c, r, st) == DECIDED)
            finish_slot(c, r);
    }
}

/* At stop's deadline: cancels every transfer and retry wait. */
static void abandon_all(struct bt_client *c)
{
    for (size_t k = 0; k < c->n_slots; k++) {
        struct req *r = &c->slots[k];
        if (!r->b)
            continue;
        if (r->running)
            end_attempt(c, r, false, CURLE_ABORTED_BY_CALLBACK);
        r->b->outcome = BT_PUSH_ABANDONED;
        finish_slot(c, r);
    }
}

/* Waits ns on cv (woken early by submit or stop). Caller holds mu. */
static void sleep_locked(struct bt_client *c, int64_t ns)
{
    int64_t t = bt_mono_ns() + ns;
    struct timespec ts = {(time_t)(t / BT_NS_PER_SEC), (long)(t % BT_NS_PER_SEC)};
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
}

static void *push_thread(void *arg)
{
    struct bt_client *c = arg;
    /* Capabilities are per thread: a push thread needs none beyond reading credential files,
     * whatever the loop thread still holds while it loads BPF programs. */
    bt_caps_drop_except(bt_caps_keep_logs());
    for (;;) {
        pthread_mutex_lock(&c->mu);
        fill_slots(c);
        if (!c->n_active) {
            if (aborted(c) || (c->stopping && !c->qn)) {
                pthread_mutex_unlock(&c->mu);
                break;
            }
            if (!c->qn)
                pthread_cond_wait(&c->cv, &c->mu);
            else /* the gate could not hold a batch's streams (no memory): try again soon */
                sleep_locked(c, 100 * BT_NS_PER_MS);
            pthread_mutex_unlock(&c->mu);
            continue;
        }
        pthread_mutex_unlock(&c->mu);
        if (aborted(c)) {
            abandon_all(c);
            continue;
        }
        start_due(c);
        int running;
        curl_multi_perform(c->multi, &running);
        collect_done(c);
        if (aborted(c))
            continue;
        /* An answer may have freed a slot and its streams: start what the gate now lets go
         * before sleeping. */
        pthread_mutex_lock(&c->mu);
        fill_slots(c);
        pthread_mutex_unlock(&c->mu);
        int timeout = start_due(c);
        if (timeout > 0)
            curl_multi_poll(c->multi, NULL, 0, timeout, NULL); /* submit and stop wake it */
    }
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
    bt_hmap_init(&c->tenants_seen);
    bt_gate_init(&c->gate);
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
    c->n_slots = cfg->max_in_flight > 0 ? (size_t)cfg->max_in_flight : 1;
    c->slots = calloc(c->n_slots, sizeof(*c->slots));
    if (!c->slots || setup_curl(c)) {
        err = ENOMEM;
        goto fail;
    }
    for (size_t k = 0; k < c->n_slots; k++)
        if (setup_easy(c, &c->slots[k])) {
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
    } else if (queue_push(c, b)) {
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
        /* The thread may sleep in curl_multi_poll, not on cv: also right after its last
         * transfer ended, when n_active is 0 already. A wakeup is kept until the next poll. */
        if (c->multi)
            curl_multi_wakeup(c->multi);
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

size_t bt_client_backlog(const struct bt_client *c)
{
    size_t p = load_size(&c->pending), b = load_size(&c->blocked);
    size_t over = p + 1 > c->n_slots ? p + 1 - c->n_slots : 0;
    return over > b ? over : b;
}

size_t bt_client_stop(struct bt_client *c, int64_t deadline_mono_ns)
{
    size_t abandoned = 0;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cv);
    struct timespec ts = {(time_t)(deadline_mono_ns / BT_NS_PER_SEC),
                          (long)(deadline_mono_ns % BT_NS_PER_SEC)};
    if (c->multi)
        curl_multi_wakeup(c->multi);
    while ((c->qn || c->n_active) && c->thread_started && bt_mono_ns() < deadline_mono_ns)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
            break;
    if (c->qn || c->n_active) {
        __atomic_store_n(&c->abort, 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&c->cv);
    }
    for (size_t i = 0; i < c->qn; i++) {
        struct bt_batch *b = c->queue[i];
        b->outcome = BT_PUSH_ABANDONED;
        sub_size(&c->pending, 1);
        sub_size(&c->pending_bytes, b->bytes);
        put_done(c, b);
        abandoned++;
    }
    c->qn = 0;
    __atomic_store_n(&c->blocked, 0, __ATOMIC_RELAXED);
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
    free(c->queue);
    free(c->done.v);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    for (size_t k = 0; c->slots && k < c->n_slots; k++) {
        if (c->slots[k].curl)
            curl_easy_cleanup(c->slots[k].curl);
        curl_slist_free_all(c->slots[k].hdrs);
        bt_buf_free(&c->slots[k].body);
    }
    free(c->slots);
    curl_slist_free_all(c->proxy_headers);
    curl_slist_free_all(c->connect_to);
    free(c->sni_url);
    bt_oauth2_free(c->oauth2);
    bt_gate_free(&c->gate);
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
