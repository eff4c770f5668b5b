#include "core/httpd.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define COMP "httpd"
#define CONN_LIMIT 64     /* default of max_connections */
#define CONN_TIMEOUT_S 30 /* default of idle_timeout_s */
#define IDLE_SLACK_NS (100 * BT_NS_PER_MS)
#define METRICS_CTYPE "text/plain; version=0.0.4; charset=utf-8"
#define TEXT_CTYPE "text/plain; charset=utf-8"

struct bt_httpd {
    struct bt_loop *loop;
    struct MHD_Daemon *d;
    int epfd;       /* MHD's epoll fd, registered with the loop */
    uint64_t timer; /* 0 when MHD wants no timeout */
    int port;
    char *unix_path; /* unlinked when the server is freed */
    struct bt_httpd_handlers h;
    char prefix[256];
    size_t prefix_len;
    char *tls_cert, *tls_key; /* PEM, kept for the daemon's lifetime */
    struct bt_ratelimit refuse_rl;
    unsigned max_conns, timeout_s;
    unsigned n_conns; /* open connections, by MHD's connection notifications */
    bool stopping;    /* MHD_stop_daemon is closing everything: no limit was hit */
};

/* Per connection (MHD's socket context): when it was last seen busy (a request's headers or
 * body data, a response sent). MHD closes a connection idle_timeout_s after its last traffic,
 * which is never earlier than this, so a connection that closes longer than that after it was
 * last seen busy was closed for being idle. */
struct conn {
    int64_t seen_ns;
    bool timed_out; /* MHD said so for a request in progress */
};

/* Counts a refused request or connection in bpftail_http_refused_total{port,reason}. */
static void count_refused(struct bt_httpd *s, const char *reason)
{
    if (!s->h.metrics)
        return;
    char labels[96];
    snprintf(labels, sizeof(labels), "port=\"%d\",reason=\"%s\"", s->port, reason);
    bt_counter_inc(bt_metrics_counter(
        s->h.metrics, "bpftail_http_refused_total",
        "HTTP requests and connections the agent's servers refused: body_too_large (413) or "
        "connection_limit (closed at once).",
        labels));
}

/* Per-request state, allocated on the first call for a request, freed on completion. */
struct req {
    size_t body;
    size_t max; /* body cap of this request */
    bool too_large;
    bool keep; /* the body is kept in buf: a POST for the generic handler, or any
                  request for a request handler */
    struct bt_buf buf;
};

const char *bt_http_header(const struct bt_http_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static enum MHD_Result reply_buf(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 struct bt_buf *body);
static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text);

/* A whole request to the server's request handler. */
static enum MHD_Result serve_request(struct bt_httpd *s, struct MHD_Connection *c, const char *url,
                                     const char *method, struct req *r)
{
    struct bt_http_request hr = {.method = method,
                                 .url = url,
                                 .body = r->buf.ptr ? r->buf.ptr : "",
                                 .body_len = r->buf.len,
                                 .conn = c};
    struct bt_buf out;
    const char *ctype = NULL;
    bt_buf_init(&out, BT_HTTPD_MAX_RESPONSE);
    int status = s->h.request(s->h.ctx, &hr, &out, &ctype);
    bt_buf_free(&r->buf);
    if (out.len == 0 && status != MHD_HTTP_NO_CONTENT) {
        bt_buf_free(&out);
        return reply_text(c, (unsigned)status, "");
    }
    return reply_buf(c, (unsigned)status, ctype ? ctype : TEXT_CTYPE, &out);
}

/* ---- connections and their limits ------------------------------------------------------ */

/* A limit hit goes to the server's limit_hit handler (the receivers count it as theirs);
 * without one, refused connections and bodies are counted in bpftail_http_refused_total and a
 * refused connection is logged, rate-limited. */
static void limit_hit(struct bt_httpd *s, enum bt_httpd_limit what)
{
    if (s->h.limit_hit) {
        s->h.limit_hit(s->h.ctx, what);
        return;
    }
    if (what == BT_HTTPD_LIMIT_BODY) {
        count_refused(s, "body_too_large");
    } else if (what == BT_HTTPD_LIMIT_CONNECTIONS) {
        count_refused(s, "connection_limit");
        uint64_t sup = 0;
        if (bt_ratelimit_ok(&s->refuse_rl, &sup))
            BT_WARN(COMP, "connection limit reached, connection closed",
                    "port=%d limit=%u suppressed=%llu", s->port, s->max_conns,
                    (unsigned long long)sup);
    }
}

static struct conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* MHD's accept policy: past max_connections the new connection is closed at once (counted),
 * never left waiting in the listen backlog. MHD's own limit is one above, never reached. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct bt_httpd *s = cls;
    (void)addr;
    (void)addrlen;
    if (s->n_conns < s->max_conns)
        return MHD_YES;
    limit_hit(s, BT_HTTPD_LIMIT_CONNECTIONS);
    return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct bt_httpd *s = cls;
    (void)c;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct conn *cn = calloc(1, sizeof(*cn));
        if (cn)
            cn->seen_ns = bt_mono_ns();
        *socket_context = cn; /* NULL when out of memory: counted, its timeout not */
        s->n_conns++;
        return;
    }
    struct conn *cn = *socket_context;
    if (s->n_conns)
        s->n_conns--;
    /* MHD measures idleness on its own millisecond clock (a coarse one where the system has
     * it), which can run a few ms behind ours: a close within IDLE_SLACK_NS of the timeout
     * is MHD's. */
    if (cn && !s->stopping &&
        (cn->timed_out ||
         bt_mono_ns() - cn->seen_ns >= (int64_t)s->timeout_s * BT_NS_PER_SEC - IDLE_SLACK_NS))
        limit_hit(s, BT_HTTPD_LIMIT_IDLE_TIMEOUT);
    free(cn);
    *socket_context = NULL;
}

/* ---- listen socket -------------------------------------------------------------------- */

static int listen_on(const struct sockaddr *sa, socklen_t salen, bool v6only_off)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0, rc = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (v6only_off)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, sa, salen) < 0 || listen(fd, 64) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* Returns a listening fd or -errno. "" and "0.0.0.0" try IPv6 dual stack, then IPv4. */
static int open_listener(const char *addr, int port)
{
    if (!addr || !*addr || strcmp(addr, "0.0.0.0") == 0) {
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6,
                                  .sin6_port = htons((uint16_t)port),
                                  .sin6_addr = IN6ADDR_ANY_INIT};
        int fd = listen_on((struct sockaddr *)&s6, sizeof(s6), true);
        if (fd >= 0 || fd == -EADDRINUSE || fd == -EACCES)
            return fd;
        struct sockaddr_in s4 = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_ANY)};
        return listen_on((struct sockaddr *)&s4, sizeof(s4), false);
    }
    char svc[16];
    snprintf(svc, sizeof(svc), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(addr, svc, &hints, &res);
    if (g != 0)
        return g == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
    int fd = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = listen_on(ai->ai_addr, ai->ai_addrlen, false);
        if (fd >= 0)
            break;
    }
    freeaddrinfo(res);
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ---- responses ------------------------------------------------------------------------ */

/* Queues body (taken over and emptied) with status and content type. */
static enum MHD_Result reply_buf(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 struct bt_buf *body)
{
    size_t len;
    char *p = bt_buf_take(body, &len);
    if (!p)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, p, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(p);
        return MHD_NO;
    }
    if (ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, TEXT_CTYPE);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_redirect(struct MHD_Connection *c, const char *location)
{
    static const char body[] = "<a href=\"/targets\">See Other</a>.\n";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, location);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SEE_OTHER, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_method(struct MHD_Connection *c, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        sizeof("method not allowed\n") - 1, (void *)"method not allowed\n", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, TEXT_CTYPE);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
    MHD_destroy_response(r);
    return ret;
}

/* Runs a body-producing handler: 0 → 200 with its body, else 500 with its message (or dflt). */
static enum MHD_Result call_handler(struct MHD_Connection *c, int (*fn)(void *, struct bt_buf *),
                                    void *ctx, const char *ctype, const char *ok_dflt,
                                    const char *fail_dflt)
{
    struct bt_buf b;
    bt_buf_init(&b, BT_HTTPD_MAX_RESPONSE);
    int rc = fn(ctx, &b);
    if (rc == 0) {
        if (b.len == 0 && ok_dflt && bt_buf_adds(&b, ok_dflt) < 0)
            return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        return reply_buf(c, MHD_HTTP_OK, ctype, &b);
    }
    if (b.len == 0)
        bt_buf_adds(&b, fail_dflt);
    if (b.len && b.ptr[b.len - 1] != '\n')
        bt_buf_adds(&b, "\n");
    if (b.len == 0) /* the message itself failed */
        return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error\n");
    return reply_buf(c, MHD_HTTP_INTERNAL_SERVER_ERROR, TEXT_CTYPE, &b);
}

static enum MHD_Result serve_metrics(struct bt_httpd *s, struct MHD_Connection *c)
{
    struct bt_buf b;
    bt_buf_init(&b, BT_HTTPD_MAX_RESPONSE);
    int rc = s->h.metrics ? bt_metrics_render(s->h.metrics, &b) : 0;
    if (rc == 0) {
        int prc = bt_httpd_process_metrics(&b);
        if (prc == -E2BIG || prc == -ENOMEM)
            rc = prc;
        /* An unreadable /proc only loses the process_* lines. */
    }
    if (rc < 0) {
        bt_buf_free(&b);
        BT_WARN(COMP, "metrics render failed", "err=%d", rc);
        return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics render failed\n");
    }
    return reply_buf(c, MHD_HTTP_OK, METRICS_CTYPE, &b);
}

static enum MHD_Result serve_post(struct bt_httpd *s, struct MHD_Connection *c, const char *url,
                                  struct req *r)
{
    struct bt_buf out;
    bt_buf_init(&out, BT_HTTPD_MAX_RESPONSE);
    const char *ctype = "application/json";
    unsigned status = s->h.post(s->h.ctx, url, bt_buf_str(&r->buf), r->buf.len, &out, &ctype);
    return reply_buf(c, status ? status : MHD_HTTP_OK, ctype, &out);
}

/* Dispatches a fully received request. */
static enum MHD_Result route(struct bt_httpd *s, struct MHD_Connection *c, const char *url,
                             const char *method, struct req *r)
{
    if (r->keep)
        return serve_post(s, c, url, r);
    bool get =
        strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    const struct bt_httpd_handlers *h = &s->h;

    /* Under a prefix, as promtail's router: /p/metrics is served, /metrics is not; /p and /p/
     * are the index. */
    if (s->prefix_len) {
        if (strncmp(url, s->prefix, s->prefix_len) != 0 ||
            (url[s->prefix_len] != '/' && url[s->prefix_len] != '\0'))
            return reply_text(c, MHD_HTTP_NOT_FOUND, "404 page not found\n");
        url += s->prefix_len;
        if (!*url)
            url = "/";
    }
    if (strcmp(url, "/reload") == 0) {
        if (!h->reload)
            return reply_text(c, MHD_HTTP_NOT_FOUND, "404 page not found\n");
        if (!post)
            return reply_method(c, "POST");
        return call_handler(c, h->reload, h->ctx, TEXT_CTYPE, "config reloaded\n",
                            "config reload failed");
    }
    int known = strcmp(url, "/") == 0 || strcmp(url, "/metrics") == 0 ||
                strcmp(url, "/ready") == 0 || (strcmp(url, "/targets") == 0 && h->targets) ||
                (strcmp(url, "/config") == 0 && h->config);
    if (!known)
        return reply_text(c, MHD_HTTP_NOT_FOUND, "404 page not found\n");
    if (!get)
        return reply_method(c, "GET, HEAD");
    if (strcmp(url, "/") == 0) {
        char to[300];
        snprintf(to, sizeof(to), "%s/targets", s->prefix);
        return reply_redirect(c, to);
    }
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(s, c);
    if (strcmp(url, "/ready") == 0) {
        if (!h->ready)
            return reply_text(c, MHD_HTTP_OK, "Ready");
        struct bt_buf b;
        bt_buf_init(&b, BT_HTTPD_MAX_RESPONSE);
        if (h->ready(h->ctx, &b) == 0) {
            bt_buf_free(&b);
            return reply_text(c, MHD_HTTP_OK, "Ready");
        }
        if (b.len == 0)
            bt_buf_adds(&b, "Not ready");
        bt_buf_adds(&b, "\n");
        if (b.len == 0)
            return reply_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "Not ready\n");
        return reply_buf(c, MHD_HTTP_INTERNAL_SERVER_ERROR, TEXT_CTYPE, &b);
    }
    if (strcmp(url, "/targets") == 0)
        return call_handler(c, h->targets, h->ctx, "application/json", NULL, "targets failed");
    return call_handler(c, h->config, h->ctx, TEXT_CTYPE, NULL, "config failed");
}

/* Body bytes are counted and discarded; past the cap the request gets 413 (or, when MHD no
 * longer accepts a response, the connection is closed). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct bt_httpd *s = cls;
    struct req *r = *con_cls;
    struct conn *cn = conn_of(c);
    if (cn)
        cn->seen_ns = bt_mono_ns();
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->max = BT_HTTPD_MAX_BODY;
        if (s->h.request) {
            r->keep = true;
            if (s->h.max_body)
                r->max = s->h.max_body;
        } else if (s->h.post && strcmp(method, MHD_HTTP_METHOD_POST) == 0 &&
                   strcmp(url, "/reload") != 0) {
            r->keep = true;
            if (s->h.post_max_body)
                r->max = s->h.post_max_body;
        }
        bt_buf_init(&r->buf, r->max);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(cl, &end, 10);
            if (errno || end == cl || n > r->max) {
                r->too_large = true;
                limit_hit(s, BT_HTTPD_LIMIT_BODY);
                return reply_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        r->body += *upload_data_size;
        if (r->keep && !r->too_large && r->body <= r->max &&
            bt_buf_add(&r->buf, upload_data, *upload_data_size) < 0)
            r->body = r->max + 1; /* out of memory: refused like an oversized body */
        *upload_data_size = 0;
        if (r->body > r->max && !r->too_large) {
            r->too_large = true;
            limit_hit(s, BT_HTTPD_LIMIT_BODY);
            return reply_text(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large\n");
        }
        return r->too_large ? MHD_NO : MHD_YES;
    }
    if (r->too_large)
        return MHD_YES; /* 413 already queued */
    if (s->h.request)
        return serve_request(s, c, url, method, r);
    return route(s, c, url, method, r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;
    struct conn *cn = conn_of(c);
    (void)cls;
    if (cn && toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
        cn->timed_out = true;
    else if (cn)
        cn->seen_ns = bt_mono_ns();
    if (r)
        bt_buf_free(&r->buf);
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    BT_DEBUG(COMP, "libmicrohttpd", "detail=\"%s\"", msg);
}

/* ---- loop glue ------------------------------------------------------------------------ */

static void on_timer(struct bt_loop *l, uint64_t id, void *arg);

/* Keeps one loop timer alive exactly while MHD asks for a timeout. */
static void rearm(struct bt_httpd *s)
{
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(s->d, &ms) != MHD_YES) {
        if (s->timer)
            bt_loop_del_timer(s->loop, s->timer);
        s->timer = 0;
        return;
    }
    int64_t ns = ms > (MHD_UNSIGNED_LONG_LONG)(INT64_MAX / BT_NS_PER_MS)
                     ? INT64_MAX
                     : (int64_t)ms * BT_NS_PER_MS;
    if (s->timer && bt_loop_reset_timer(s->loop, s->timer, ns) == 0)
        return;
    s->timer = bt_loop_add_timer(s->loop, ns, 0, on_timer, s);
    if (!s->timer)
        BT_WARN(COMP, "cannot add timer", NULL);
}

static void run_mhd(struct bt_httpd *s)
{
    MHD_run(s->d);
    rearm(s);
}

static void on_timer(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_httpd *s = arg;
    s->timer = 0; /* one-shot: the loop already dropped it */
    run_mhd(s);
}

static void on_epoll(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    run_mhd(arg);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

/* Starts MHD on the listening socket lfd and registers its epoll fd with the loop. lfd is
 * MHD's from here on: when the start fails it is not closed here, because MHD's failure path
 * may already have closed it, and a one-time leak on a failed start beats a double close of
 * a number another thread may have reused. 0 or -errno. */
#define MAX_PEM (1u << 20)

/* Reads a whole PEM file (at most MAX_PEM bytes) into *out. 0 or -errno. */
static int slurp(const char *path, char **out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char *buf = malloc(MAX_PEM + 1);
    size_t n = 0;
    int rc = buf ? 0 : -ENOMEM;
    while (!rc && n < MAX_PEM) {
        ssize_t r = read(fd, buf + n, MAX_PEM - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = -errno;
        else if (r == 0)
            break;
        else
            n += (size_t)r;
    }
    close(fd);
    if (!rc && n == MAX_PEM)
        rc = -EFBIG;
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int load_tls(struct bt_httpd *s, const struct bt_httpd_handlers *h, char *err, size_t errlen)
{
    int rc;
    if (!h->tls_cert_file || !h->tls_key_file) {
        snprintf(err, errlen, "http server: TLS needs both a certificate and a key file");
        return -EINVAL;
    }
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "http server: this libmicrohttpd has no TLS support");
        return -ENOTSUP;
    }
    if ((rc = slurp(h->tls_cert_file, &s->tls_cert))) {
        snprintf(err, errlen, "http server: cannot read cert_file %s: %s", h->tls_cert_file,
                 strerror(-rc));
        return rc;
    }
    if ((rc = slurp(h->tls_key_file, &s->tls_key))) {
        snprintf(err, errlen, "http server: cannot read key_file %s: %s", h->tls_key_file,
                 strerror(-rc));
        return rc;
    }
    return 0;
}

static int start_mhd(struct bt_httpd *s, int lfd)
{
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL},
        {MHD_OPTION_LISTEN_SOCKET, lfd, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)s->max_conns + 1, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)s->timeout_s, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (s->tls_cert)
        flags |= MHD_USE_TLS;
    /* External polling with epoll: no thread inside MHD; the loop calls MHD_run. */
    if (s->tls_cert)
        s->d = MHD_start_daemon(flags, 0, on_accept, s, on_request, s, MHD_OPTION_ARRAY, opts,
                                MHD_OPTION_HTTPS_MEM_CERT, s->tls_cert, MHD_OPTION_HTTPS_MEM_KEY,
                                s->tls_key, MHD_OPTION_END);
    else
        s->d = MHD_start_daemon(flags, 0, on_accept, s, on_request, s, MHD_OPTION_ARRAY, opts,
                                MHD_OPTION_END);
    if (!s->d)
        return errno ? -errno : -EIO;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di || di->epoll_fd < 0)
        return -ENOTSUP;
    int rc = bt_loop_add_fd(s->loop, di->epoll_fd, EPOLLIN, on_epoll, s);
    if (rc < 0)
        return rc;
    s->epfd = di->epoll_fd;
    rearm(s);
    return 0;
}

static struct bt_httpd *server_new(struct bt_loop *loop, const struct bt_httpd_handlers *h)
{
    struct bt_httpd *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    s->epfd = -1;
    s->refuse_rl = (struct bt_ratelimit)BT_RATELIMIT_INIT(10);
    if (h)
        s->h = *h;
    s->h.path_prefix = NULL; /* copied into s->prefix by the caller that takes one */
    s->h.tls_cert_file = s->h.tls_key_file = NULL;
    s->max_conns = s->h.max_connections ? s->h.max_connections : CONN_LIMIT;
    s->timeout_s = s->h.idle_timeout_s ? s->h.idle_timeout_s : CONN_TIMEOUT_S;
    return s;
}

struct bt_httpd *bt_httpd_new(struct bt_loop *loop, const char *addr, int port,
                              const struct bt_httpd_handlers *h, char *err, size_t errlen)
{
    const char *shown = addr && *addr ? addr : "0.0.0.0";
    int rc = 0;
    struct bt_httpd *s = NULL;
    if (port < 0 || port > 65535) {
        rc = -EINVAL;
        snprintf(err, errlen, "http server: invalid port %d for %s", port, shown);
        goto fail;
    }
    s = server_new(loop, h);
    if (!s) {
        rc = -ENOMEM;
        snprintf(err, errlen, "http server: out of memory");
        goto fail;
    }
    if (h && h->path_prefix && h->path_prefix[0]) {
        size_t n = strlen(h->path_prefix);
        if (h->path_prefix[0] != '/' || h->path_prefix[n - 1] == '/' || n >= sizeof(s->prefix)) {
            rc = -EINVAL;
            snprintf(err, errlen, "http server: invalid path prefix \"%s\"", h->path_prefix);
            goto fail;
        }
        memcpy(s->prefix, h->path_prefix, n + 1);
        s->prefix_len = n;
    }
    if (h && (h->tls_cert_file || h->tls_key_file) && (rc = load_tls(s, h, err, errlen)))
        goto fail;
    int lfd = open_listener(addr, port);
    if (lfd < 0) {
        rc = lfd;
        snprintf(err, errlen, "http server: cannot listen on %s:%d: %s", shown, port,
                 strerror(-rc));
        goto fail;
    }
    s->port = bound_port(lfd);
    rc = start_mhd(s, lfd);
    if (rc < 0) {
        snprintf(err, errlen, "http server: cannot start on %s:%d: %s", shown, s->port,
                 strerror(-rc));
        goto fail;
    }
    BT_DEBUG(COMP, "listening", "addr=%s port=%d", shown, s->port);
    return s;
fail:
    bt_httpd_free(s);
    errno = -rc;
    return NULL;
}

/* Binds a unix stream socket at path. A leftover socket file (a previous run that died) is
 * removed first, but only when nothing answers on it, so a second instance fails instead of
 * stealing the first one's socket. Returns the listening fd or -errno. */
static int open_unix_listener(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            return -EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    mode_t old = umask(0077);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0 || listen(fd, 64) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

struct bt_httpd *bt_httpd_new_unix(struct bt_loop *loop, const char *path,
                                   const struct bt_httpd_handlers *h, char *err, size_t errlen)
{
    int rc = 0;
    struct bt_httpd *s = server_new(loop, h);
    if (!s || !(s->unix_path = strdup(path))) {
        rc = -ENOMEM;
        snprintf(err, errlen, "http server: out of memory");
        goto fail;
    }
    int lfd = open_unix_listener(path);
    if (lfd < 0) {
        rc = lfd;
        free(s->unix_path); /* not ours: do not unlink it */
        s->unix_path = NULL;
        snprintf(err, errlen, "http server: cannot listen on unix socket %s: %s", path,
                 rc == -EEXIST ? "a file that is not a socket is in the way" : strerror(-rc));
        goto fail;
    }
    rc = start_mhd(s, lfd);
    if (rc < 0) {
        snprintf(err, errlen, "http server: cannot start on unix socket %s: %s", path,
                 strerror(-rc));
        goto fail;
    }
    BT_DEBUG(COMP, "listening", "socket=%s", path);
    return s;
fail:
    bt_httpd_free(s);
    errno = -rc;
    return NULL;
}

int bt_httpd_port(const struct bt_httpd *s)
{
    return s->port;
}

int bt_httpd_timer_armed(const struct bt_httpd *s)
{
    return s->timer != 0;
}

void bt_httpd_free(struct bt_httpd *s)
{
    if (!s)
        return;
    if (s->timer)
        bt_loop_del_timer(s->loop, s->timer);
    if (s->epfd >= 0)
        bt_loop_del_fd(s->loop, s->epfd);
    s->stopping = true;
    if (s->d)
        MHD_stop_daemon(s->d);
    free(s->tls_cert);
    free(s->tls_key);
    if (s->unix_path) {
        unlink(s->unix_path);
        free(s->unix_path);
    }
    free(s);
}

/* ---- process metrics ------------------------------------------------------------------ */

/* Fields of /proc/self/stat after the command name, by their stat(5) number. */
struct pstat {
    unsigned long long utime, stime, starttime, vsize, rss;
};

static int read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, len - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    return (int)n;
}

static int read_pstat(struct pstat *ps)
{
    char buf[1024];
    int rc = read_file("/proc/self/stat", buf, sizeof(buf));
    if (rc < 0)
        return rc;
    /* comm may hold spaces and parentheses: fields restart after the last ')'. Field 3 is
     * the state letter; utime is 14, stime 15, starttime 22, vsize 23, rss 24. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -EINVAL;
    p++;
    for (int field = 3; field <= 24; field++) {
        while (*p == ' ')
            p++;
        if (!*p)
            return -EINVAL;
        char *end = p;
        unsigned long long v = 0;
        if (field != 3) {
            v = strtoull(p, &end, 10);
            if (end == p)
                return -EINVAL;
        } else {
            while (*end && *end != ' ')
                end++;
        }
        switch (field) {
        case 14: ps->utime = v; break;
        case 15: ps->stime = v; break;
        case 22: ps->starttime = v; break;
        case 23: ps->vsize = v; break;
        case 24: ps->rss = v; break;
        default: break;
        }
        p = end;
    }
    return 0;
}

static int boot_time(unsigned long long *out)
{
    char buf[8192];
    int rc = read_file("/proc/stat", buf, sizeof(buf));
    if (rc < 0)
        return rc;
    char *p = strstr(buf, "\nbtime ");
    if (!p)
        return -EINVAL;
    char *end;
    *out = strtoull(p + 7, &end, 10);
    return end == p + 7 ? -EINVAL : 0;
}

static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -errno;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory stream's own fd */
}

int bt_httpd_process_metrics(struct bt_buf *out)
{
    struct pstat ps = {0};
    unsigned long long btime = 0;
    int rc = read_pstat(&ps);
    if (rc == 0)
        rc = boot_time(&btime);
    long fds = count_fds();
    if (rc == 0 && fds < 0)
        rc = (int)fds;
    if (rc < 0)
        return rc;
    double tick = (double)sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);
    double start = (double)btime + (double)ps.starttime / tick;
    return bt_buf_addf(
        out,
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
        "# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total %.2f\n"
        "# HELP process_max_fds Maximum number of open file descriptors.\n"
        "# TYPE process_max_fds gauge\n"
        "process_max_fds %llu\n"
        "# HELP process_open_fds Number of open file descriptors.\n"
        "# TYPE process_open_fds gauge\n"
        "process_open_fds %ld\n"
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes %llu\n"
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
        "# TYPE process_start_time_seconds gauge\n"
        "process_start_time_seconds %.2f\n"
        "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
        "# TYPE process_virtual_memory_bytes gauge\n"
        "process_virtual_memory_bytes %llu\n",
        (double)(ps.utime + ps.stime) / tick, (unsigned long long)rl.rlim_cur, fds,
        ps.rss * (unsigned long long)page, start, ps.vsize);
}
