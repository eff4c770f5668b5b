#include "source/k8s_sd.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "config/node.h"
#include "source/k8s_pod.h"
#include "source/k8s_sd_int.h"
#include "source/relabel.h"
#include "util/buf.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"

#define COMP "kubernetes_sd"
#define LIST_MAX (256u << 20) /* bytes of one LIST answer */
#define EVENT_MAX (16u << 20) /* one watch event line */
#define BACKOFF_MIN (1 * BT_NS_PER_SEC)
#define BACKOFF_MAX (30 * BT_NS_PER_SEC)
#define WATCH_MIN_NS (1 * BT_NS_PER_SEC) /* a watch ending sooner, without events, backs off */
#define SECRET_MAX 16384
#define LIST_PAGE 500 /* objects per LIST page, as client-go's reflector asks */

struct bt_k8s_sd;

/* One LIST + WATCH loop: all namespaces, or one. */
struct watcher {
    struct bt_k8s_sd *sd;
    char *ns;           /* NULL: all namespaces */
    bool aux;           /* watches the services or pods whose labels the role's targets carry */
    enum k8s_join join; /* aux: which */
    bool synced;        /* aux: has listed once */
    CURL *easy;
    bool watching; /* easy is a WATCH (else a LIST) */
    bool relist;   /* the watch said 410 Gone: list again at once */
    bool got_event;
    struct bt_buf body;
    struct curl_slist *hdrs;
    char rv[128];
    char cont[4096]; /* continue token of the LIST in progress ("" for its first page) */
    size_t listed;   /* objects in the pages of this LIST so far */
    uint64_t gen;    /* of the LIST in progress */
    int64_t backoff_ns;
    int64_t started;
    uint64_t timer;
    char errbuf[CURL_ERROR_SIZE];
};

struct bt_k8s_sd {
    struct k8s_conf conf;
    struct bt_loop *loop;
    struct k8s_targets tg;
    char *job;
    CURLM *multi;
    uint64_t curl_timer;
    struct watcher *ws;
    size_t n_ws;
    struct bt_series *m_events[5], *m_failures, *m_relists;
    struct bt_ratelimit rl_bad; /* watch lines not understood */
    bool closing;
};

static void watcher_start(struct watcher *w, bool list);
static void schedule(struct watcher *w, int64_t delay_ns);

/* What the watcher lists: the role's objects, or the services or pods joined to them. */
static enum k8s_role watcher_role(const struct watcher *w)
{
    if (!w->aux)
        return w->sd->conf.role;
    return w->join == K8S_JOIN_POD ? K8S_POD : K8S_SERVICE;
}

/* ---- responses ---- */

static void set_rv(struct watcher *w, const json_t *obj)
{
    const char *rv =
        json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    if (rv && *rv)
        snprintf(w->rv, sizeof(w->rv), "%s", rv);
}

static const char *const event_types[5] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

static void count_event(struct bt_k8s_sd *sd, const char *type)
{
    for (size_t i = 0; i < 5; i++)
        if (strcmp(type, event_types[i]) == 0)
            bt_counter_inc(sd->m_events[i]);
}

/* One line of a watch stream. Returns false to end the stream (410: list again). */
static bool watch_line(struct watcher *w, const char *p, size_t n)
{
    struct bt_k8s_sd *sd = w->sd;
    json_error_t je;
    json_t *ev = json_loadb(p, n, 0, &je);
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    bool go_on = true;
    uint64_t sup;
    if (!type || !json_is_object(obj)) {
        /* An event lost is a pod change unknown: the stream is not trusted any more. */
        if (bt_ratelimit_ok(&sd->rl_bad, &sup))
            BT_WARN(COMP, "watch event not understood, listing again",
                    "job=%s err=\"%s\" suppressed=%llu", sd->job,
                    ev ? "no type or object" : je.text, (unsigned long long)sup);
        w->relist = true;
        w->backoff_ns = w->backoff_ns ? w->backoff_ns : BACKOFF_MIN;
        go_on = false;
    } else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
        if (w->aux)
            k8s_join_update(&sd->tg, w->join, w, w->gen, obj);
        else
            k8s_object_update(&sd->tg, w, w->gen, obj);
        set_rv(w, obj);
    } else if (strcmp(type, "DELETED") == 0) {
        if (w->aux)
            k8s_join_delete(&sd->tg, w->join, obj);
        else
            k8s_object_delete(&sd->tg, obj);
        set_rv(w, obj);
    } else if (strcmp(type, "BOOKMARK") == 0) {
        set_rv(w, obj);
    } else if (strcmp(type, "ERROR") == 0) {
        json_int_t code = json_integer_value(json_object_get(obj, "code"));
        const char *msg = json_string_value(json_object_get(obj, "message"));
        if (code == 410)
            BT_INFO(COMP, "watch expired (410 Gone), listing again", "job=%s msg=\"%s\"", sd->job,
                    msg ? msg : "");
        else
            BT_WARN(COMP, "watch error, listing again", "job=%s code=%lld msg=\"%s\"", sd->job,
                    (long long)code, msg ? msg : "");
        w->relist = true;
        if (code != 410)
            w->backoff_ns = w->backoff_ns ? w->backoff_ns : BACKOFF_MIN;
        go_on = false;
    }
    if (type)
        count_event(sd, type);
    w->got_event = true;
    json_decref(ev);
    return go_on;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    struct watcher *w = ud;
    size_t n = sz * nm;
    if (!w->watching)
        return bt_buf_add(&w->body, p, n) == 0 ? n : 0;
    size_t done = 0;
    while (done < n) {
        const char *nl = memchr(p + done, '\n', n - done);
        size_t take = nl ? (size_t)(nl - (p + done)) : n - done;
        if (bt_buf_add(&w->body, p + done, take) < 0) {
            BT_WARN(COMP, "watch event too large, listing again", "job=%s max=%u", w->sd->job,
                    EVENT_MAX);
            w->relist = true;
            return 0;
        }
        done += take;
        if (!nl)
            break;
        done++;
        bool go_on = w->body.len == 0 || watch_line(w, w->body.ptr, w->body.len);
        bt_buf_reset(&w->body);
        if (!go_on)
            return 0; /* ends the transfer; check_done lists again */
    }
    return n;
}

static void list_done(struct watcher *w)
{
    struct bt_k8s_sd *sd = w->sd;
    json_error_t je;
    json_t *doc = json_loadb(w->body.ptr ? w->body.ptr : "", w->body.len, 0, &je);
    json_t *items = json_object_get(doc, "items");
    if (!json_is_array(items)) {
        BT_WARN(COMP, "list not understood", "job=%s err=\"%s\"", sd->job,
                doc ? "no items" : je.text);
        bt_counter_inc(sd->m_failures);
        json_decref(doc);
        schedule(w, -1);
        return;
    }
    size_t i;
    json_t *pod;
    json_array_foreach(items, i, pod)
    {
        if (w->aux)
            k8s_join_update(&sd->tg, w->join, w, w->gen, pod);
        else
            k8s_object_update(&sd->tg, w, w->gen, pod);
    }
    w->listed += json_array_size(items);
    const char *cont =
        json_string_value(json_object_get(json_object_get(doc, "metadata"), "continue"));
    if (cont && *cont) { /* more pages of the same snapshot */
        if (strlen(cont) >= sizeof(w->cont)) {
            BT_WARN(COMP, "list continue token too long, listing again", "job=%s", sd->job);
            w->cont[0] = '\0';
            json_decref(doc);
            schedule(w, -1);
            return;
        }
        snprintf(w->cont, sizeof(w->cont), "%s", cont);
        json_decref(doc);
        watcher_start(w, true);
        return;
    }
    w->cont[0] = '\0';
    /* Objects of this watcher that the list no longer has went away while nobody watched. */
    if (w->aux) {
        k8s_joins_sweep(&sd->tg, w->join, w, w->gen);
        w->synced = true;
        bool all = true;
        for (size_t k = 0; k < sd->n_ws; k++)
            all = all && (!sd->ws[k].aux || sd->ws[k].synced);
        if (all)
            k8s_joins_synced(&sd->tg);
    } else {
        k8s_objects_sweep(&sd->tg, w, w->gen);
    }
    w->rv[0] = '\0';
    set_rv(w, doc);
    BT_INFO(COMP, "objects listed",
            "job=%s role=%s namespace=%s objects=%zu targets=%zu "
            "resource_version=%s",
            sd->job, k8s_role_name(watcher_role(w)), w->ns ? w->ns : "(all)", w->listed,
            sd->tg.targets.n, w->rv);
    json_decref(doc);
    if (!w->rv[0]) { /* nothing to watch from: list again later rather than at once */
        BT_WARN(COMP, "list without a resourceVersion", "job=%s", sd->job);
        schedule(w, -1);
        return;
    }
    w->backoff_ns = 0;
    watcher_start(w, false);
}

static void request_done(struct watcher *w, CURLcode res)
{
    struct bt_k8s_sd *sd = w->sd;
    long http = 0;
    curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &http);
    curl_multi_remove_handle(sd->multi, w->easy);
    curl_easy_cleanup(w->easy);
    w->easy = NULL;
    curl_slist_free_all(w->hdrs);
    w->hdrs = NULL;
    bool watching = w->watching;
    if (!watching && res == CURLE_OK && http == 200) {
        list_done(w);
        bt_buf_reset(&w->body);
        return;
    }
    bt_buf_reset(&w->body);
    w->cont[0] = '\0'; /* whatever comes next is a new LIST from its first page */
    if (http == 410 || (w->relist && res == CURLE_WRITE_ERROR && !w->backoff_ns)) {
        bt_counter_inc(sd->m_relists);
        if (http == 410)
            BT_INFO(COMP, "watch expired (HTTP 410 Gone), listing again", "job=%s", sd->job);
        w->relist = false;
        /* A watch refused at once lists again after a second, not at once: a server that
         * keeps answering 410 to a fresh list's version must not make a busy loop. */
        if (bt_mono_ns() - w->started < WATCH_MIN_NS)
            schedule(w, BACKOFF_MIN);
        else
            watcher_start(w, true);
        return;
    }
    if (watching && res == CURLE_OK && !w->relist) {
        /* The server ended the watch (its timeout): watch on from the last version seen. */
        bool quick = bt_mono_ns() - w->started < WATCH_MIN_NS && !w->got_event;
        if (!quick) {
            w->backoff_ns = 0;
            watcher_start(w, false);
            return;
        }
    }
    bt_counter_inc(sd->m_failures);
    if (watching && res == CURLE_OK && !w->relist)
        BT_WARN(COMP, "watch ended without an event right after it opened, listing again",
                "job=%s namespace=%s", sd->job, w->ns ? w->ns : "(all)");
    else if (!w->relist)
        BT_WARN(COMP, watching ? "watch failed" : "list failed",
                "job=%s namespace=%s status=%ld err=\"%s\"", sd->job, w->ns ? w->ns : "(all)", http,
                w->errbuf[0] ? w->errbuf : curl_easy_strerror(res));
    w->relist = false;
    schedule(w, -1);
}

/* ---- requests ---- */

static int auth_headers(struct watcher *w, CURL *e)
{
    struct k8s_conn *cn = &w->sd->conf.conn;
    char secret[SECRET_MAX];
    const char *cred = cn->auth_cred;
    if (cn->auth_cred_file) {
        /* Read for every request: a rotated service-account token is used from now on. */
        int rc = k8s_read_secret(cn->auth_cred_file, secret, sizeof(secret));
        if (rc < 0) {
            BT_WARN(COMP, "cannot read the token file", "job=%s path=%s err=%s", w->sd->job,
                    cn->auth_cred_file, strerror(-rc));
            return rc;
        }
        cred = secret;
    }
    if (cred) {
        char *h = NULL;
        if (asprintf(&h, "Authorization: %s %s", cn->auth_scheme, cred) < 0)
            return -ENOMEM;
        struct curl_slist *n = curl_slist_append(w->hdrs, h);
        explicit_bzero(h, strlen(h));
        free(h);
        if (!n)
            return -ENOMEM;
        w->hdrs = n;
    }
    if (cn->user || cn->user_file) {
        char user[1024], pass[4096];
        snprintf(user, sizeof(user), "%s", cn->user ? cn->user : "");
        snprintf(pass, sizeof(pass), "%s", cn->pass ? cn->pass : "");
        if ((cn->user_file && k8s_read_secret(cn->user_file, user, sizeof(user)) < 0) ||
            (cn->pass_file && k8s_read_secret(cn->pass_file, pass, sizeof(pass)) < 0)) {
            BT_WARN(COMP, "cannot read the basic_auth files", "job=%s", w->sd->job);
            return -EIO;
        }
        curl_easy_setopt(e, CURLOPT_USERNAME, user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, pass);
        explicit_bzero(pass, sizeof(pass));
    }
    explicit_bzero(secret, sizeof(secret));
    return 0;
}

static void tls_options(struct k8s_conn *cn, CURL *e)
{
    if (cn->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, cn->ca_file);
    if (cn->ca_pem) {
        struct curl_blob b = {cn->ca_pem, cn->ca_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
    }
    if (cn->cert_file)
        curl_easy_setopt(e, CURLOPT_SSLCERT, cn->cert_file);
    if (cn->cert_pem) {
        struct curl_blob b = {cn->cert_pem, cn->cert_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
    }
    if (cn->key_file)
        curl_easy_setopt(e, CURLOPT_SSLKEY, cn->key_file);
    if (cn->key_pem) {
        struct curl_blob b = {cn->key_pem, cn->key_len, CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
    }
    if (cn->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cn->proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, cn->proxy);
}

static int build_url(struct watcher *w, bool list, struct bt_buf *u)
{
    struct bt_k8s_sd *sd = w->sd;
    int rc = bt_buf_adds(u, sd->conf.conn.server);
    enum k8s_role role = watcher_role(w);
    bool pods = w->aux && w->join == K8S_JOIN_POD;
    const char *api = k8s_role_api(role), *res = k8s_role_resource(role);
    if (rc == 0 && w->ns) {
        char *e = curl_easy_escape(NULL, w->ns, 0);
        rc = e ? bt_buf_addf(u, "%s/namespaces/%s/%s", api, e, res) : -ENOMEM;
        curl_free(e);
    } else if (rc == 0) {
        rc = bt_buf_addf(u, "%s/%s", api, res);
    }
    char sep = '?';
    const char *sel[2][2] = {{"labelSelector", pods     ? sd->conf.pod_label_sel
                                               : w->aux ? sd->conf.svc_label_sel
                                                        : sd->conf.label_sel},
                             {"fieldSelector", pods     ? sd->conf.pod_field_sel
                                               : w->aux ? sd->conf.svc_field_sel
                                                        : sd->conf.field_sel}};
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (!sel[i][1])
            continue;
        char *e = curl_easy_escape(NULL, sel[i][1], 0);
        rc = e ? bt_buf_addf(u, "%c%s=%s", sep, sel[i][0], e) : -ENOMEM;
        curl_free(e);
        sep = '&';
    }
    if (rc == 0 && list) {
        rc = bt_buf_addf(u, "%climit=%d", sep, LIST_PAGE);
        sep = '&';
        if (rc == 0 && w->cont[0]) {
            char *e = curl_easy_escape(NULL, w->cont, 0);
            rc = e ? bt_buf_addf(u, "&continue=%s", e) : -ENOMEM;
            curl_free(e);
        }
    }
    if (rc == 0 && !list) {
        /* Like client-go's reflector: the server ends a watch after 5 to 10 minutes. */
        long t = 300 + (long)(bt_mono_ns() / 1000 % 300);
        rc = bt_buf_addf(u,
                         "%cwatch=1&allowWatchBookmarks=true&resourceVersion=%s"
                         "&timeoutSeconds=%ld",
                         sep, w->rv, t);
    }
    return rc;
}

static void watcher_start(struct watcher *w, bool list)
{
    struct bt_k8s_sd *sd = w->sd;
    if (sd->closing)
        return;
    struct bt_buf u;
    bt_buf_init(&u, 64 * 1024);
    CURL *e = curl_easy_init();
    int rc = e ? build_url(w, list, &u) : -ENOMEM;
    w->hdrs = curl_slist_append(NULL, "Accept: application/json");
    if (rc == 0 && !w->hdrs)
        rc = -ENOMEM;
    if (rc == 0)
        rc = auth_headers(w, e);
    if (rc < 0) {
        curl_easy_cleanup(e);
        curl_slist_free_all(w->hdrs);
        w->hdrs = NULL;
        bt_buf_free(&u);
        schedule(w, -1);
        return;
    }
    w->watching = !list;
    w->relist = false;
    w->got_event = false;
    w->started = bt_mono_ns();
    w->errbuf[0] = '\0';
    if (list && !w->cont[0]) { /* a new LIST, not its next page */
        w->gen++;
        w->listed = 0;
    }
    bt_buf_free(&w->body);
    bt_buf_init(&w->body, list ? LIST_MAX : EVENT_MAX);
    curl_easy_setopt(e, CURLOPT_URL, u.ptr);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, w->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(e, CURLOPT_PRIVATE, w);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, w->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (list)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 120000L);
    else /* a watch is quiet for long stretches; a dead peer is found by the server's timeout */
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 15L * 60 * 1000);
    tls_options(&sd->conf.conn, e);
    bt_buf_free(&u);
    w->easy = e;
    if (curl_multi_add_handle(sd->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        w->easy = NULL;
        curl_slist_free_all(w->hdrs);
        w->hdrs = NULL;
        schedule(w, -1);
    }
}

static void on_retry(struct bt_loop *l, uint64_t id, void *arg)
{
    struct watcher *w = arg;
    (void)l;
    (void)id;
    w->timer = 0;
    watcher_start(w, true);
}

/* Lists again after delay_ns, or (-1) after the next backoff step. */
static void schedule(struct watcher *w, int64_t delay_ns)
{
    if (w->sd->closing)
        return;
    if (delay_ns < 0) {
        w->backoff_ns = w->backoff_ns ? w->backoff_ns * 2 : BACKOFF_MIN;
        if (w->backoff_ns > BACKOFF_MAX)
            w->backoff_ns = BACKOFF_MAX;
        delay_ns = w->backoff_ns;
    }
    if (w->timer)
        bt_loop_del_timer(w->sd->loop, w->timer);
    w->timer = bt_loop_add_timer(w->sd->loop, delay_ns, 0, on_retry, w);
}

/* ---- libcurl on the event loop ---- */

static void check_done(struct bt_k8s_sd *sd)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(sd->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct watcher *w = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&w);
        request_done(w, m->data.result);
    }
}

static void on_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_k8s_sd *sd = arg;
    (void)l;
    int flags = (events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                (events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    int running;
    curl_multi_socket_action(sd->multi, fd, flags, &running);
    check_done(sd);
}

static int on_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct bt_k8s_sd *sd = userp;
    (void)e;
    if (what == CURL_POLL_REMOVE) {
        if (socketp) {
            bt_loop_del_fd(sd->loop, s);
            curl_multi_assign(sd->multi, s, NULL);
        }
        return 0;
    }
    uint32_t ev = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (!socketp) {
        if (bt_loop_add_fd(sd->loop, s, ev, on_io, sd) < 0)
            return -1;
        curl_multi_assign(sd->multi, s, sd);
    } else {
        bt_loop_mod_fd(sd->loop, s, ev);
    }
    return 0;
}

static void on_curl_timer_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_k8s_sd *sd = arg;
    (void)l;
    (void)id;
    sd->curl_timer = 0;
    int running;
    curl_multi_socket_action(sd->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(sd);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
    struct bt_k8s_sd *sd = userp;
    (void)m;
    if (sd->closing)
        return 0;
    if (timeout_ms < 0) {
        if (sd->curl_timer)
            bt_loop_del_timer(sd->loop, sd->curl_timer);
        sd->curl_timer = 0;
        return 0;
    }
    int64_t d = (int64_t)timeout_ms * BT_NS_PER_MS;
    if (sd->curl_timer && bt_loop_reset_timer(sd->loop, sd->curl_timer, d) == 0)
        return 0;
    sd->curl_timer = bt_loop_add_timer(sd->loop, d, 0, on_curl_timer_fire, sd);
    return sd->curl_timer ? 0 : -1;
}

/* ---- public ---- */

static void metrics_init(struct bt_k8s_sd *sd, struct bt_metrics *m)
{
    if (!m)
        return;
    char esc[256], lbl[300];
    bt_metrics_escape(esc, sizeof(esc), sd->job);
    snprintf(lbl, sizeof(lbl), "job=\"%s\"", esc);
    for (size_t i = 0; i < 5; i++) {
        char el[400];
        snprintf(el, sizeof(el), "%s,type=\"%s\"", lbl, event_types[i]);
        sd->m_events[i] = bt_metrics_counter(m, "bpftail_kubernetes_sd_events_total",
                                             "Watch events received from the Kubernetes API, by "
                                             "type.",
                                             el);
    }
    sd->m_failures = bt_metrics_counter(
        m, "bpftail_kubernetes_sd_failures_total",
        "Kubernetes API lists and watches that failed (retried with backoff).", lbl);
    sd->m_relists = bt_metrics_counter(
        m, "bpftail_kubernetes_sd_relists_total",
        "Kubernetes API lists made again after a watch expired (410 Gone).", lbl);
    sd->tg.m_targets = bt_metrics_gauge(m, "bpftail_kubernetes_sd_targets",
                                        "File targets made of discovered Kubernetes objects.", lbl);
}

struct bt_k8s_sd *bt_k8s_sd_new(const struct bt_node *cfg, struct bt_loop *loop,
                                struct bt_metrics *metrics, struct bt_relabel *relabel,
                                const char *job, bt_k8s_sd_fn fn, void *ctx, char *err,
                                size_t errlen)
{
    struct bt_k8s_sd *sd = calloc(1, sizeof(*sd));
    if (!sd) {
        snprintf(err, errlen, "kubernetes_sd_configs: out of memory");
        return NULL;
    }
    sd->loop = loop;
    sd->rl_bad = (struct bt_ratelimit)BT_RATELIMIT_INIT(10);
    k8s_targets_init(&sd->tg, K8S_POD, relabel, "", fn, ctx);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = k8s_conf_parse(&sd->conf, cfg, !loop, err, errlen);
    if (rc == 0 && !(sd->job = strdup(job ? job : "")))
        rc = -ENOMEM;
    if (rc)
        goto fail;
    sd->tg.role = sd->conf.role;
    sd->tg.job = sd->job;
    if (!loop)
        return sd;
    metrics_init(sd, metrics);
    size_t per = sd->conf.n_ns ? sd->conf.n_ns : 1;
    sd->n_ws = k8s_role_joins_services(sd->conf.role) ? 3 * per : per; /* + services, pods */
    sd->tg.hold = sd->n_ws > per;
    sd->ws = calloc(sd->n_ws, sizeof(*sd->ws));
    if (!sd->ws || !(sd->multi = curl_multi_init())) {
        snprintf(err, errlen, "kubernetes_sd_configs: out of memory");
        goto fail;
    }
    curl_multi_setopt(sd->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(sd->multi, CURLMOPT_SOCKETDATA, sd);
    curl_multi_setopt(sd->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(sd->multi, CURLMOPT_TIMERDATA, sd);
    for (size_t i = 0; i < sd->n_ws; i++) {
        struct watcher *w = &sd->ws[i];
        w->sd = sd;
        w->ns = sd->conf.n_ns ? sd->conf.ns[i % per] : NULL;
        w->aux = i >= per;
        w->join = i >= 2 * per ? K8S_JOIN_POD : K8S_JOIN_SERVICE;
        bt_buf_init(&w->body, LIST_MAX);
        watcher_start(w, true);
    }
    BT_INFO(COMP, "discovering",
            "job=%s role=%s api_server=%s namespaces=%zu field_selector=%s "
            "label_selector=%s",
            sd->job, k8s_role_name(sd->conf.role), sd->conf.conn.server, sd->conf.n_ns,
            sd->conf.field_sel ? sd->conf.field_sel : "",
            sd->conf.label_sel ? sd->conf.label_sel : "");
    return sd;
fail:
    bt_k8s_sd_free(sd);
    errno = EINVAL;
    return NULL;
}

void bt_k8s_sd_free(struct bt_k8s_sd *sd)
{
    if (!sd)
        return;
    sd->closing = true;
    for (size_t i = 0; i < sd->n_ws; i++) {
        struct watcher *w = &sd->ws[i];
        if (w->easy) {
            curl_multi_remove_handle(sd->multi, w->easy);
            curl_easy_cleanup(w->easy);
        }
        curl_slist_free_all(w->hdrs);
        if (w->timer)
            bt_loop_del_timer(sd->loop, w->timer);
        bt_buf_free(&w->body);
    }
    free(sd->ws);
    k8s_targets_free(&sd->tg);
    if (sd->multi)
        curl_multi_cleanup(sd->multi);
    if (sd->curl_timer)
        bt_loop_del_timer(sd->loop, sd->curl_timer);
    k8s_conf_free(&sd->conf);
    free(sd->job);
    free(sd);
    curl_global_cleanup();
}

size_t bt_k8s_sd_targets(const struct bt_k8s_sd *sd)
{
    return sd->tg.targets.n;
}

size_t bt_k8s_sd_pods(const struct bt_k8s_sd *sd)
{
    return sd->tg.objs.n;
}
