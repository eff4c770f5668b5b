/* The HTTP server on a real loopback socket: the test thread drives the bt_loop while a
 * libcurl client in a second thread makes the request. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/httpd.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "util/buf.h"
#include "util/timeutil.h"

struct fetch {
    int port;
    const char *unix_path; /* set: connect to this unix socket instead of the port */
    const char *method;    /* "GET", "HEAD", "POST" */
    const char *path;
    size_t post_len; /* POST body size (filled with 'x') */
    long status;
    char body[16384];
    size_t body_len;
    char headers[4096];
    size_t headers_len;
    int curl_rc;
    const char *cafile; /* set: https, trusting this certificate */
    atomic_int done;
};

struct app {
    int ready_rc;
    int reload_rc;
    int ready_calls, targets_calls, reload_calls;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct fetch *f = arg;
    size_t len = sz * n;
    size_t room = sizeof(f->body) - 1 - f->body_len;
    size_t c = len < room ? len : room;
    memcpy(f->body + f->body_len, p, c);
    f->body_len += c;
    f->body[f->body_len] = '\0';
    return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct fetch *f = arg;
    size_t len = sz * n;
    size_t room = sizeof(f->headers) - 1 - f->headers_len;
    size_t c = len < room ? len : room;
    memcpy(f->headers + f->headers_len, p, c);
    f->headers_len += c;
    f->headers[f->headers_len] = '\0';
    return len;
}

static void *client_main(void *arg)
{
    struct fetch *f = arg;
    char url[256];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", f->cafile ? "https" : "http", f->port,
             f->path);
    CURL *c = curl_easy_init();
    if (f->cafile)
        curl_easy_setopt(c, CURLOPT_CAINFO, f->cafile);
    char *post = NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (f->unix_path)
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, f->unix_path);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (strcmp(f->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(f->method, "POST") == 0) {
        post = malloc(f->post_len + 1);
        memset(post, 'x', f->post_len);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)f->post_len);
    }
    f->curl_rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
    curl_easy_cleanup(c);
    free(post);
    atomic_store(&f->done, 1);
    return NULL;
}

/* Drives the loop until the client thread finishes (guard: 15 s, then the test fails). */
static void run_fetch(struct bt_loop *l, struct fetch *f)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, client_main, f), 0);
    int64_t deadline = bt_mono_ns() + 15 * BT_NS_PER_SEC;
    while (!atomic_load(&f->done) && bt_mono_ns() < deadline)
        cr_assert_geq(bt_loop_run_once(l, 20 * BT_NS_PER_MS), 0);
    int finished = atomic_load(&f->done);
    if (!finished) /* let curl's own timeout end the thread before failing */
        while (!atomic_load(&f->done))
            bt_loop_run_once(l, 20 * BT_NS_PER_MS);
    pthread_join(t, NULL);
    cr_assert(finished, "client did not finish");
}

static struct fetch *get(struct bt_loop *l, struct bt_httpd *s, const char *method,
                         const char *path)
{
    struct fetch *f = calloc(1, sizeof(*f));
    f->port = bt_httpd_port(s);
    f->method = method;
    f->path = path;
    run_fetch(l, f);
    return f;
}

static int app_ready(void *ctx, struct bt_buf *msg)
{
    struct app *a = ctx;
    a->ready_calls++;
    if (a->ready_rc)
        bt_buf_adds(msg, "Not ready: Unable to find any logs to tail.");
    return a->ready_rc;
}

static int app_targets(void *ctx, struct bt_buf *json)
{
    struct app *a = ctx;
    a->targets_calls++;
    return bt_buf_adds(json, "{\"varlogs\":[{\"path\":\"/x.log\",\"position\":42}]}");
}

static int app_config(void *ctx, struct bt_buf *yaml)
{
    return bt_buf_adds(yaml, "server:\n  http_listen_port: 9080\n");
}

static int app_reload(void *ctx, struct bt_buf *msg)
{
    struct app *a = ctx;
    a->reload_calls++;
    if (a->reload_rc)
        bt_buf_adds(msg, "error: bad key at line 3");
    return a->reload_rc;
}

static struct bt_loop *loop;
static struct bt_metrics *reg;
static struct bt_httpd *srv;
static struct app app;

static void setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    loop = bt_loop_new();
    cr_assert_not_null(loop);
    reg = bt_metrics_new();
    memset(&app, 0, sizeof(app));
    struct bt_httpd_handlers h = {.metrics = reg,
                                  .ready = app_ready,
                                  .targets = app_targets,
                                  .config = app_config,
                                  .reload = app_reload,
                                  .ctx = &app};
    char err[256] = "";
    srv = bt_httpd_new(loop, "127.0.0.1", 0, &h, err, sizeof(err));
    cr_assert_not_null(srv, "start failed: %s", err);
    cr_assert_gt(bt_httpd_port(srv), 0);
}

static void teardown(void)
{
    bt_httpd_free(srv);
    bt_metrics_free(reg);
    bt_loop_free(loop);
    curl_global_cleanup();
}

TestSuite(httpd, .init = setup, .fini = teardown);

Test(httpd, metrics_render_registry_and_process_metrics_with_exposition_type)
{
    bt_counter_add(bt_metrics_counter(reg, "bt_test_lines_total", "Lines.", "path=\"/a\""), 3);
    struct fetch *f = get(loop, srv, "GET", "/metrics");
    cr_assert_eq(f->curl_rc, 0);
    cr_assert_eq(f->status, 200);
    cr_assert(strstr(f->headers, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
              "%s", f->headers);
    cr_assert(strstr(f->body, "# TYPE bt_test_lines_total counter\n"
                              "bt_test_lines_total{path=\"/a\"} 3\n"),
              "%s", f->body);
    cr_assert(strstr(f->body, "# TYPE process_cpu_seconds_total counter\n"
                              "process_cpu_seconds_total "));
    cr_assert(strstr(f->body, "\nprocess_resident_memory_bytes "));
    cr_assert(strstr(f->body, "\nprocess_open_fds "));
    cr_assert(strstr(f->body, "\nprocess_start_time_seconds "));
    free(f);
}

Test(httpd, process_metrics_hold_plausible_values)
{
    struct bt_buf b;
    bt_buf_init(&b, 1 << 20);
    cr_assert_eq(bt_httpd_process_metrics(&b), 0);
    const char *s = bt_buf_str(&b);
    const char *p = strstr(s, "\nprocess_resident_memory_bytes ");
    cr_assert_not_null(p);
    double rss = strtod(p + strlen("\nprocess_resident_memory_bytes "), NULL);
    cr_assert_gt(rss, 100 * 1024.0, "rss %f", rss);
    p = strstr(s, "\nprocess_start_time_seconds ");
    cr_assert_not_null(p);
    double start = strtod(p + strlen("\nprocess_start_time_seconds "), NULL);
    double now = (double)bt_now_ns() / 1e9;
    cr_assert(start > now - 3600 && start <= now + 1, "start %f now %f", start, now);
    p = strstr(s, "\nprocess_open_fds ");
    cr_assert_not_null(p);
    long fds = strtol(p + strlen("\nprocess_open_fds "), NULL, 10);
    cr_assert_geq(fds, 3); /* stdio, the loop's epoll fd and the server's */
    bt_buf_free(&b);
}

Test(httpd, head_metrics_has_no_body)
{
    struct fetch *f = get(loop, srv, "HEAD", "/metrics");
    cr_assert_eq(f->status, 200);
    cr_assert_eq(f->body_len, 0);
    free(f);
}

Test(httpd, ready_is_200_ready_when_handler_says_ready)
{
    struct fetch *f = get(loop, srv, "GET", "/ready");
    cr_assert_eq(f->status, 200);
    cr_assert_str_eq(f->body, "Ready");
    cr_assert_eq(app.ready_calls, 1);
    free(f);
}

Test(httpd, ready_is_500_with_handler_message_when_not_ready)
{
    app.ready_rc = 1;
    struct fetch *f = get(loop, srv, "GET", "/ready");
    cr_assert_eq(f->status, 500);
    cr_assert_str_eq(f->body, "Not ready: Unable to find any logs to tail.\n");
    free(f);
}

Test(httpd, targets_serves_handler_json)
{
    struct fetch *f = get(loop, srv, "GET", "/targets");
    cr_assert_eq(f->status, 200);
    cr_assert(strstr(f->headers, "Content-Type: application/json\r\n"), "%s", f->headers);
    cr_assert_str_eq(f->body, "{\"varlogs\":[{\"path\":\"/x.log\",\"position\":42}]}");
    cr_assert_eq(app.targets_calls, 1);
    free(f);
}

Test(httpd, config_serves_effective_config_as_text)
{
    struct fetch *f = get(loop, srv, "GET", "/config");
    cr_assert_eq(f->status, 200);
    cr_assert(strstr(f->headers, "Content-Type: text/plain"), "%s", f->headers);
    cr_assert_str_eq(f->body, "server:\n  http_listen_port: 9080\n");
    free(f);
}

Test(httpd, root_redirects_to_targets_with_303)
{
    struct fetch *f = get(loop, srv, "GET", "/");
    cr_assert_eq(f->status, 303);
    cr_assert(strstr(f->headers, "Location: /targets\r\n"), "%s", f->headers);
    cr_assert_eq(app.targets_calls, 0, "redirect must not be followed");
    free(f);
}

Test(httpd, unknown_path_is_404)
{
    struct fetch *f = get(loop, srv, "GET", "/nope");
    cr_assert_eq(f->status, 404);
    free(f);
    f = get(loop, srv, "GET", "/metrics/extra");
    cr_assert_eq(f->status, 404);
    free(f);
}

Test(httpd, wrong_method_is_405)
{
    struct fetch *f = calloc(1, sizeof(*f));
    f->port = bt_httpd_port(srv);
    f->method = "POST";
    f->path = "/metrics";
    run_fetch(loop, f);
    cr_assert_eq(f->status, 405);
    cr_assert(strstr(f->headers, "Allow: GET, HEAD\r\n"), "%s", f->headers);
    free(f);
    f = get(loop, srv, "GET", "/reload");
    cr_assert_eq(f->status, 405);
    cr_assert_eq(app.reload_calls, 0);
    free(f);
}

static struct fetch *post(const char *path, size_t len)
{
    struct fetch *f = calloc(1, sizeof(*f));
    f->port = bt_httpd_port(srv);
    f->method = "POST";
    f->path = path;
    f->post_len = len;
    run_fetch(loop, f);
    return f;
}

Test(httpd, post_reload_calls_handler_and_reports_outcome)
{
    struct fetch *f = post("/reload", 0);
    cr_assert_eq(f->status, 200);
    cr_assert_eq(app.reload_calls, 1);
    free(f);
    app.reload_rc = -EINVAL;
    f = post("/reload", 10);
    cr_assert_eq(f->status, 500);
    cr_assert_str_eq(f->body, "error: bad key at line 3\n");
    cr_assert_eq(app.reload_calls, 2);
    free(f);
}

Test(httpd, body_over_64k_is_refused_without_calling_handler)
{
    struct fetch *f = post("/reload", 64 * 1024);
    cr_assert_eq(f->status, 200, "a body of exactly the cap is accepted");
    cr_assert_eq(app.reload_calls, 1);
    free(f);
    f = post("/reload", 64 * 1024 + 1);
    cr_assert_eq(f->status, 413);
    cr_assert_str_eq(f->body, "request body too large\n");
    cr_assert_eq(app.reload_calls, 1);
    free(f);
}

Test(httpd, idle_server_keeps_no_timer)
{
    cr_assert_not(bt_httpd_timer_armed(srv), "no connection, no timer");
    /* An open connection makes MHD ask for its idle timeout: the timer must exist then. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)bt_httpd_port(srv)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    for (int i = 0; i < 200 && !bt_httpd_timer_armed(srv); i++)
        bt_loop_run_once(loop, 20 * BT_NS_PER_MS);
    cr_assert(bt_httpd_timer_armed(srv), "open connection but no timer");
    close(fd);
    for (int i = 0; i < 200 && bt_httpd_timer_armed(srv); i++)
        bt_loop_run_once(loop, 20 * BT_NS_PER_MS);
    cr_assert_not(bt_httpd_timer_armed(srv), "timer still armed after the raw client left");
    struct fetch *f = get(loop, srv, "GET", "/ready");
    cr_assert_eq(f->status, 200);
    free(f);
    /* curl closed its connection; let the server notice and drop it. */
    for (int i = 0; i < 200 && bt_httpd_timer_armed(srv); i++)
        bt_loop_run_once(loop, 20 * BT_NS_PER_MS);
    cr_assert_not(bt_httpd_timer_armed(srv), "timer still armed after the client left");
    cr_assert_eq(bt_loop_run_once(loop, 50 * BT_NS_PER_MS), 0, "idle loop ran a callback");
}

Test(httpd, handlers_are_optional)
{
    struct bt_httpd_handlers h = {0};
    char err[256];
    struct bt_httpd *s2 = bt_httpd_new(loop, "127.0.0.1", 0, &h, err, sizeof(err));
    cr_assert_not_null(s2, "%s", err);
    struct fetch *f = get(loop, s2, "GET", "/ready");
    cr_assert_eq(f->status, 200);
    free(f);
    f = get(loop, s2, "GET", "/targets");
    cr_assert_eq(f->status, 404);
    free(f);
    f = get(loop, s2, "GET", "/metrics");
    cr_assert_eq(f->status, 200);
    cr_assert(strstr(f->body, "process_open_fds"));
    free(f);
    struct fetch *p = calloc(1, sizeof(*p));
    p->port = bt_httpd_port(s2);
    p->method = "POST";
    p->path = "/reload";
    run_fetch(loop, p);
    cr_assert_eq(p->status, 404);
    free(p);
    bt_httpd_free(s2);
}

Test(httpd, bind_failure_names_address_and_port)
{
    char err[256] = "";
    int port = bt_httpd_port(srv);
    struct bt_httpd *s2 = bt_httpd_new(loop, "127.0.0.1", port, NULL, err, sizeof(err));
    cr_assert_null(s2);
    cr_assert_eq(errno, EADDRINUSE);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    cr_assert(strstr(err, want), "%s", err);
    s2 = bt_httpd_new(loop, "not-an-address.invalid", 0, NULL, err, sizeof(err));
    cr_assert_null(s2);
    cr_assert(strstr(err, "not-an-address.invalid:0"), "%s", err);
}

Test(httpd, all_addresses_accepts_loopback_clients)
{
    char err[256];
    struct bt_httpd *s2 = bt_httpd_new(loop, "", 0, NULL, err, sizeof(err));
    cr_assert_not_null(s2, "%s", err);
    struct fetch *f = get(loop, s2, "GET", "/ready");
    cr_assert_eq(f->status, 200);
    free(f);
    bt_httpd_free(s2);
}

struct raw {
    int port;
    const char *request;
    char reply[8192];
    size_t len;
    atomic_int done;
};

static void *raw_main(void *arg)
{
    struct raw *r = arg;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)r->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write(fd, r->request, strlen(r->request)) == (ssize_t)strlen(r->request)) {
        ssize_t n;
        while (r->len < sizeof(r->reply) - 1 &&
               (n = read(fd, r->reply + r->len, sizeof(r->reply) - 1 - r->len)) > 0)
            r->len += (size_t)n;
    }
    r->reply[r->len] = '\0';
    close(fd);
    atomic_store(&r->done, 1);
    return NULL;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(httpd, pipelined_requests_in_one_packet_are_all_answered)
{
    /* The second request is already in MHD's buffer when the first is answered: no new epoll
     * edge arrives for it, so this only passes if MHD's "run again now" timeout is honoured. */
    struct raw r = {.port = bt_httpd_port(srv),
                    .request = "GET /ready HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /targets HTTP/1.1\r\nHost: t\r\n\r\n"
                               "GET /ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"};
    pthread_t t;
    pthread_create(&t, NULL, raw_main, &r);
    int64_t deadline = bt_mono_ns() + 15 * BT_NS_PER_SEC;
    while (!atomic_load(&r.done) && bt_mono_ns() < deadline)
        bt_loop_run_once(loop, 20 * BT_NS_PER_MS);
    pthread_join(t, NULL);
    cr_assert_eq(count(r.reply, "HTTP/1.1 200 OK\r\n"), 3, "%s", r.reply);
    cr_assert_eq(app.ready_calls, 2);
    cr_assert_eq(app.targets_calls, 1);
}

Test(httpd, one_connection_serves_several_requests)
{
    struct raw r = {.port = bt_httpd_port(srv),
                    .request = "GET /ready HTTP/1.1\r\nHost: t\r\n\r\n"};
    /* Keep-alive: send a second request on the same socket after the first answer. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)r.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    connect(fd, (struct sockaddr *)&sa, sizeof(sa)); /* EINPROGRESS on loopback is fine */
    for (int i = 0; i < 50; i++)
        bt_loop_run_once(loop, 1 * BT_NS_PER_MS);
    char buf[4096];
    size_t len = 0;
    for (int round = 0; round < 2; round++) {
        cr_assert_eq(write(fd, r.request, strlen(r.request)), (ssize_t)strlen(r.request));
        int64_t deadline = bt_mono_ns() + 10 * BT_NS_PER_SEC;
        while (count(buf, "\r\n\r\nReady") < round + 1 && bt_mono_ns() < deadline) {
            bt_loop_run_once(loop, 5 * BT_NS_PER_MS);
            ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
            if (n > 0)
                len += (size_t)n;
            buf[len] = '\0';
        }
        cr_assert_eq(count(buf, "\r\n\r\nReady"), round + 1, "round %d: %s", round, buf);
        cr_assert(bt_httpd_timer_armed(srv), "kept-alive connection needs its idle timer");
    }
    close(fd);
    cr_assert_eq(app.ready_calls, 2);
}

Test(httpd, path_prefix_serves_every_endpoint_under_it_and_nothing_at_the_root)
{
    struct bt_httpd_handlers h = {.metrics = reg,
                                  .ready = app_ready,
                                  .targets = app_targets,
                                  .config = app_config,
                                  .reload = app_reload,
                                  .ctx = &app,
                                  .path_prefix = "/logs/promtail"};
    char err[256] = "";
    struct bt_httpd *p = bt_httpd_new(loop, "127.0.0.1", 0, &h, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    static const struct {
        const char *method, *path;
        long status;
    } cases[] = {
        {"GET", "/logs/promtail/metrics", 200},
        {"GET", "/logs/promtail/ready", 200},
        {"GET", "/logs/promtail/targets", 200},
        {"GET", "/logs/promtail/config", 200},
        {"POST", "/logs/promtail/reload", 200},
        {"GET", "/metrics", 404},
        {"GET", "/ready", 404},
        {"GET", "/logs/promtailx/metrics", 404},
        {"GET", "/logs/metrics", 404},
        {"POST", "/reload", 404},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fetch *f = calloc(1, sizeof(*f));
        f->port = bt_httpd_port(p);
        f->method = cases[i].method;
        f->path = cases[i].path;
        run_fetch(loop, f);
        cr_assert_eq(f->status, cases[i].status, "%s %s: %ld", cases[i].method, cases[i].path,
                     f->status);
        free(f);
    }
    const char *roots[] = {"/logs/promtail", "/logs/promtail/"};
    for (size_t i = 0; i < 2; i++) {
        struct fetch *f = get(loop, p, "GET", roots[i]);
        cr_assert_eq(f->status, 303);
        cr_assert(strstr(f->headers, "Location: /logs/promtail/targets\r\n"), "%s", f->headers);
        free(f);
    }
    bt_httpd_free(p);
    h.path_prefix = "no-slash";
    cr_assert_null(bt_httpd_new(loop, "127.0.0.1", 0, &h, err, sizeof(err)));
    cr_assert(strstr(err, "invalid path prefix"), "%s", err);
}

Test(httpd, tls_config_serves_https_with_the_given_certificate)
{
    struct bt_httpd_handlers h = {.metrics = reg,
                                  .ready = app_ready,
                                  .ctx = &app,
                                  .tls_cert_file = BT_SOURCE_DIR "/tests/data/tls/server.pem",
                                  .tls_key_file = BT_SOURCE_DIR "/tests/data/tls/server.key"};
    char err[256] = "";
    struct bt_httpd *p = bt_httpd_new(loop, "127.0.0.1", 0, &h, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    struct fetch *f = calloc(1, sizeof(*f));
    f->port = bt_httpd_port(p);
    f->method = "GET";
    f->path = "/ready";
    f->cafile = BT_SOURCE_DIR "/tests/data/tls/server.pem";
    run_fetch(loop, f);
    cr_assert_eq(f->curl_rc, 0, "curl: %d", f->curl_rc);
    cr_assert_eq(f->status, 200);
    cr_assert_str_eq(f->body, "Ready");
    free(f);
    /* Plain HTTP gets no answer from a TLS server. */
    f = get(loop, p, "GET", "/ready");
    cr_assert_neq(f->status, 200);
    free(f);
    bt_httpd_free(p);

    h.tls_key_file = "/nonexistent/server.key";
    cr_assert_null(bt_httpd_new(loop, "127.0.0.1", 0, &h, err, sizeof(err)));
    cr_assert(strstr(err, "cannot read key_file /nonexistent/server.key"), "%s", err);
    h.tls_key_file = NULL;
    cr_assert_null(bt_httpd_new(loop, "127.0.0.1", 0, &h, err, sizeof(err)));
    cr_assert(strstr(err, "both a certificate and a key"), "%s", err);
}

/* ---- unix socket and the generic POST handler (the Docker plugin's protocol) ---- */

struct posted {
    int calls;
    char url[128];
    size_t len;
    int all_x;
};

static unsigned app_post(void *ctx, const char *url, const char *body, size_t len,
                         struct bt_buf *out, const char **ctype)
{
    struct posted *p = ctx;
    p->calls++;
    snprintf(p->url, sizeof(p->url), "%s", url);
    p->len = len;
    p->all_x = 1;
    for (size_t i = 0; i < len; i++)
        p->all_x &= body[i] == 'x';
    *ctype = "application/vnd.docker.plugins.v1.1+json";
    bt_buf_addf(out, "{\"Err\":\"\",\"len\":%zu}", len);
    return strcmp(url, "/missing") == 0 ? 404 : 200;
}

static char unix_dir[64];

static struct bt_httpd *unix_server(struct posted *p, size_t max, char *path, size_t pathlen)
{
    snprintf(unix_dir, sizeof(unix_dir), "/tmp/bt-httpd-XXXXXX");
    cr_assert_not_null(mkdtemp(unix_dir));
    snprintf(path, pathlen, "%s/p.sock", unix_dir);
    struct bt_httpd_handlers h = {.post = app_post, .post_max_body = max, .ctx = p};
    char err[256] = "";
    struct bt_httpd *s = bt_httpd_new_unix(loop, path, &h, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    cr_assert_eq(bt_httpd_port(s), 0);
    return s;
}

static struct fetch *post_unix(const char *sock, const char *path, size_t len)
{
    struct fetch *f = calloc(1, sizeof(*f));
    f->unix_path = sock;
    f->method = "POST";
    f->path = path;
    f->post_len = len;
    run_fetch(loop, f);
    return f;
}

Test(httpd, unix_socket_routes_posts_with_their_body_to_the_generic_handler)
{
    struct posted p = {0};
    char path[128];
    struct bt_httpd *s = unix_server(&p, 200 * 1024, path, sizeof(path));
    struct fetch *f = post_unix(path, "/LogDriver.StartLogging", 150 * 1024);
    cr_assert_eq(f->status, 200);
    cr_assert_eq(p.calls, 1);
    cr_assert_str_eq(p.url, "/LogDriver.StartLogging");
    cr_assert_eq(p.len, 150 * 1024, "the whole body, past the built-in 64 KiB cap");
    cr_assert(p.all_x);
    cr_assert_str_eq(f->body, "{\"Err\":\"\",\"len\":153600}");
    cr_assert(strstr(f->headers, "Content-Type: application/vnd.docker.plugins.v1.1+json"), "%s",
              f->headers);
    free(f);
    f = post_unix(path, "/LogDriver.Capabilities", 0);
    cr_assert_eq(f->status, 200);
    cr_assert_eq(p.len, 0);
    free(f);
    f = post_unix(path, "/missing", 3);
    cr_assert_eq(f->status, 404, "the handler's status is used");
    free(f);
    f = post_unix(path, "/LogDriver.StartLogging", 200 * 1024 + 1);
    /* 413, or, when the server closed while curl was still sending, no answer at all. */
    cr_assert(f->status == 413 || (f->status == 0 && f->curl_rc != 0), "status %ld curl %d",
              f->status, f->curl_rc);
    cr_assert_eq(p.calls, 3, "an oversized body never reaches the handler");
    free(f);
    bt_httpd_free(s);
    cr_assert_eq(access(path, F_OK), -1, "the socket file goes with the server");
    rmdir(unix_dir);
}

Test(httpd, unix_socket_replaces_a_stale_socket_but_not_a_live_one_or_a_file)
{
    struct posted p = {0};
    char path[128], err[256];
    struct bt_httpd *s = unix_server(&p, 0, path, sizeof(path));
    struct bt_httpd_handlers h = {.post = app_post, .ctx = &p};
    cr_assert_null(bt_httpd_new_unix(loop, path, &h, err, sizeof(err)), "a live socket is kept");
    cr_assert(strstr(err, path), "%s", err);
    bt_httpd_free(s);
    /* A socket file whose server died (nothing listens): replaced. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    s = bt_httpd_new_unix(loop, path, &h, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    struct fetch *f = post_unix(path, "/Plugin.Activate", 0);
    cr_assert_eq(f->status, 200);
    free(f);
    bt_httpd_free(s);
    /* A regular file is not ours to remove. */
    FILE *fp = fopen(path, "w");
    fclose(fp);
    cr_assert_null(bt_httpd_new_unix(loop, path, &h, err, sizeof(err)));
    cr_assert(strstr(err, "not a socket"), "%s", err);
    cr_assert_eq(access(path, F_OK), 0);
    unlink(path);
    rmdir(unix_dir);
}

static int limit_hits[3];

static void on_limit_hit(void *ctx, enum bt_httpd_limit what)
{
    (void)ctx;
    limit_hits[what]++;
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Runs the loop until *counter reaches want (guard: 15 s). */
static void run_until(int *counter, int want)
{
    int64_t deadline = bt_mono_ns() + 15 * BT_NS_PER_SEC;
    while (*counter < want && bt_mono_ns() < deadline)
        bt_loop_run_once(loop, 20 * BT_NS_PER_MS);
}

Test(httpd, connections_past_the_limit_are_closed_and_idle_ones_time_out_each_counted)
{
    struct bt_httpd_handlers h = {
        .max_connections = 2, .idle_timeout_s = 1, .limit_hit = on_limit_hit};
    char err[256];
    struct bt_httpd *s = bt_httpd_new(loop, "127.0.0.1", 0, &h, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    memset(limit_hits, 0, sizeof(limit_hits));
    int a = raw_connect(bt_httpd_port(s)), b = raw_connect(bt_httpd_port(s));
    for (int i = 0; i < 200 && !bt_httpd_timer_armed(s); i++)
        bt_loop_run_once(loop, 20 * BT_NS_PER_MS);
    for (int i = 0; i < 5; i++)
        bt_loop_run_once(loop, 5 * BT_NS_PER_MS);
    int c = raw_connect(bt_httpd_port(s));
    run_until(&limit_hits[BT_HTTPD_LIMIT_CONNECTIONS], 1);
    cr_assert_eq(limit_hits[BT_HTTPD_LIMIT_CONNECTIONS], 1, "the third connection not refused");
    char buf[16];
    cr_assert_leq(read(c, buf, sizeof(buf)), 0, "the third connection was served");
    close(c);
    cr_assert_eq(limit_hits[BT_HTTPD_LIMIT_IDLE_TIMEOUT], 0);
    run_until(&limit_hits[BT_HTTPD_LIMIT_IDLE_TIMEOUT], 2);
    cr_assert_eq(limit_hits[BT_HTTPD_LIMIT_IDLE_TIMEOUT], 2, "idle connections not timed out");
    cr_assert_eq(read(a, buf, sizeof(buf)), 0);
    cr_assert_eq(read(b, buf, sizeof(buf)), 0);
    close(a);
    close(b);
    /* Room again: a request is served, and its connection, closed by the client, is no
     * timeout. */
    struct fetch *f = get(loop, s, "GET", "/ready");
    cr_assert_eq(f->status, 200);
    free(f);
    for (int i = 0; i < 20; i++)
        bt_loop_run_once(loop, 5 * BT_NS_PER_MS);
    cr_assert_eq(limit_hits[BT_HTTPD_LIMIT_IDLE_TIMEOUT], 2);
    cr_assert_eq(limit_hits[BT_HTTPD_LIMIT_CONNECTIONS], 1);
    bt_httpd_free(s);
}
