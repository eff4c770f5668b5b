#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/ack.h"
#include "source/docker_sd.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "config/node.h"
#include "source/relabel.h"
#include "tmpdir.h"
#include "util/buf.h"
#include "util/timeutil.h"

/* ---- a fake Docker API on a unix socket ---- */

#define ID "4f66ad9a0b2e4f66ad9a0b2e4f66ad9a0b2e4f66ad9a0b2e4f66ad9a0b2e1234"

static char dir[256], sock_path[300];
static int lfd = -1;
static pthread_t thr;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct bt_buf list_json, logs_body, events_body;
static char requests[16][512];
static char event_requests[16][512], lookup_requests[16][1024];
static int n_requests, n_logs, n_events, n_lookups;
static bool lookup_only; /* the listing is empty, only a lookup finds the container */
static bool drain_gone;  /* the one-shot read after a followed stream: 409, being removed */

static void frame(struct bt_buf *b, int stream, const char *s)
{
    unsigned char h[8] = {(unsigned char)stream, 0, 0, 0};
    size_t n = strlen(s);
    h[4] = (unsigned char)(n >> 24);
    h[5] = (unsigned char)(n >> 16);
    h[6] = (unsigned char)(n >> 8);
    h[7] = (unsigned char)n;
    bt_buf_add(b, h, 8);
    bt_buf_add(b, s, n);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void *serve(void *arg)
{
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[4096];
        size_t got = 0;
        while (got < sizeof(req) - 1) {
            ssize_t r = read(c, req + got, sizeof(req) - 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
            req[got] = 0;
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[got] = 0;
        char *eol = strstr(req, "\r\n");
        if (eol)
            *eol = 0;
        pthread_mutex_lock(&mu);
        char hdr[256];
        if (strstr(req, "GET /events")) {
            /* the stream ends after what the test gave it (the agent reopens it later) */
            if (n_events < 16)
                snprintf(event_requests[n_events], sizeof(event_requests[0]), "%s", req);
            n_events++;
            const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            "Connection: close\r\n\r\n";
            write_all(c, h, strlen(h));
            write_all(c, events_body.ptr, events_body.len);
            bt_buf_reset(&events_body); /* given once */
            pthread_mutex_unlock(&mu);
            close(c);
            continue;
        }
        if (strstr(req, "all=1")) {
            if (n_lookups < 16)
                snprintf(lookup_requests[n_lookups], sizeof(lookup_requests[0]), "%s", req);
            n_lookups++;
        }
        if (n_requests < 16)
            snprintf(requests[n_requests++], sizeof(requests[0]), "%s", req);
        if (strstr(req, "/containers/json")) {
            const char *body = lookup_only && !strstr(req, "all=1") ? "[]" : list_json.ptr;
            int k = snprintf(hdr, sizeof(hdr),
                             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                             strlen(body));
            write_all(c, hdr, (size_t)k);
            write_all(c, body, strlen(body));
        } else if (drain_gone && strstr(req, "follow=0")) {
            n_logs++;
            const char *h = "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n"
                            "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
            write_all(c, h, strlen(h));
        } else {
            n_logs++;
            const char *h = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                            "Connection: close\r\n\r\n";
            write_all(c, h, strlen(h));
            write_all(c, logs_body.ptr, logs_body.len);
        }
        pthread_mutex_unlock(&mu);
        close(c);
    }
}

/* ---- the agent side ---- */

#define MAXE 64
static struct {
    char line[256];
    char labels[512];
    int64_t ts;
} got[MAXE];
static size_t n_got;
static struct bt_segment *held[MAXE];
static int64_t stored_cursor, cursor_seen;

static void sink(void *ctx, const struct bt_entry *e)
{
    cr_assert_lt(n_got, MAXE);
    snprintf(got[n_got].line, sizeof(got[0].line), "%.*s", (int)e->line_len, e->line);
    snprintf(got[n_got].labels, sizeof(got[0].labels), "%s", bt_labels_canon(e->labels, NULL));
    got[n_got].ts = e->ts_ns;
    bt_segment_ref(e->seg, 1); /* as a batch would */
    held[n_got++] = e->seg;
}

static int64_t cur_get(void *p, const char *id)
{
    return strcmp(id, ID) == 0 ? stored_cursor : 0;
}

static void cur_set(void *p, const char *id, int64_t ns)
{
    cursor_seen = ns;
}

static void setup(void)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    snprintf(sock_path, sizeof(sock_path), "%s/d.sock", dir);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(lfd, 8), 0);
    bt_buf_init(&list_json, 1 << 20);
    bt_buf_init(&logs_body, 1 << 20);
    bt_buf_init(&events_body, 1 << 20);
    bt_buf_adds(
        &list_json,
        "[{\"Id\":\"" ID "\",\"Names\":[\"/web-1\"],\"Image\":\"bb\","
        "\"Labels\":{\"com.example.team\":\"core\"},\"HostConfig\":{\"NetworkMode\":\"bridge\"},"
        "\"NetworkSettings\":{\"Networks\":{\"bridge\":{\"NetworkID\":\"n1\",\"IPAddress\":\"172."
        "17.0.2\"}}},"
        "\"Ports\":[{\"PrivatePort\":8080,\"PublicPort\":80,\"IP\":\"0.0.0.0\",\"Type\":\"tcp\"}]}"
        "]");
    cr_assert_eq(pthread_create(&thr, NULL, serve, NULL), 0);
}

static void teardown(void)
{
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(thr, NULL);
    bt_buf_free(&list_json);
    bt_buf_free(&logs_body);
    bt_buf_free(&events_body);
    for (size_t i = 0; i < n_got; i++)
        bt_segment_unref(held[i], 1);
    n_got = 0;
    n_requests = n_logs = n_events = n_lookups = 0;
    lookup_only = drain_gone = false;
    stored_cursor = cursor_seen = 0;
    bt_tmpdir_remove(dir);
}

TestSuite(docker_sd, .init = setup, .fini = teardown);

static struct bt_node *yaml(const char *t)
{
    char err[256];
    struct bt_node *n = bt_yaml_parse(t, strlen(t), "sd.yaml", err, sizeof(err));
    cr_assert_not_null(n, "%s", err);
    return n;
}

struct run {
    struct bt_loop *loop;
    struct bt_node *cfg, *rel;
    struct bt_relabel *r;
    struct bt_docker_sd *sd;
};

static void start(struct run *x, const char *extra)
{
    char text[1024], err[256];
    snprintf(text, sizeof(text), "host: unix://%s\nrefresh_interval: 1h\n%s", sock_path,
             extra ? extra : "");
    x->loop = bt_loop_new();
    x->cfg = yaml(text);
    x->rel = yaml("- source_labels: [__meta_docker_container_name]\n"
                  "  regex: '/(.*)'\n"
                  "  target_label: container\n"
                  "- source_labels: [__meta_docker_container_log_stream]\n"
                  "  target_label: stream\n"
                  "- source_labels: [__meta_docker_container_label_com_example_team]\n"
                  "  target_label: team\n"
                  "- source_labels: [__address__]\n"
                  "  target_label: addr\n");
    x->r = bt_relabel_new(x->rel, err, sizeof(err));
    cr_assert_not_null(x->r, "%s", err);
    struct bt_docker_sd_env env = {.loop = x->loop,
                                   .relabel = x->r,
                                   .job = "docker",
                                   .sink = sink,
                                   .cursor_get = cur_get,
                                   .cursor_set = cur_set};
    x->sd = bt_docker_sd_new(x->cfg, &env, err, sizeof(err));
    cr_assert_not_null(x->sd, "%s", err);
}

static void stop(struct run *x)
{
    bt_docker_sd_free(x->sd);
    bt_relabel_free(x->r);
    bt_node_free(x->cfg);
    bt_node_free(x->rel);
    bt_loop_free(x->loop);
}

/* Runs the loop until n entries arrived and the log stream ended, or 5 s passed. */
static void run_until(struct run *x, size_t n)
{
    int64_t until = bt_mono_ns() + 5 * BT_NS_PER_SEC;
    while (bt_mono_ns() < until &&
           (n_got < n || bt_docker_sd_following(x->sd) > 0 || bt_docker_sd_containers(x->sd) == 0))
        bt_loop_run_once(x->loop, 50 * BT_NS_PER_MS);
}

Test(docker_sd, lists_follows_demultiplexes_and_labels)
{
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000001Z hello\n");
    frame(&logs_body, 2, "2026-11-29T06:15:22.000000002Z to-stderr\n");
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000003Z part-one ");
    frame(&logs_body, 2, "2026-11-29T06:15:22.000000004Z err-two\n");
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000003Z part-two\n");
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000006Z unterminated");
    struct run x;
    start(&x, NULL);
    run_until(&x, 5);
    cr_assert_eq(n_got, 5);
    cr_assert_str_eq(got[0].line, "hello");
    cr_assert_str_eq(got[0].labels, "{addr=\"172.17.0.2:8080\", container=\"web-1\", "
                                    "stream=\"stdout\", team=\"core\"}");
    cr_assert_eq(got[0].ts, 1795932922000000001LL);
    cr_assert_str_eq(got[1].line, "to-stderr");
    cr_assert(strstr(got[1].labels, "stream=\"stderr\""));
    cr_assert_str_eq(got[2].line, "err-two");
    cr_assert_str_eq(got[3].line, "part-one part-two", "split frames are joined");
    cr_assert_eq(got[3].ts, 1795932922000000003LL, "with the first frame's time");
    cr_assert_str_eq(got[4].line, "unterminated", "flushed when the stream ended");
    cr_assert(strstr(requests[0], "GET /containers/json"), "%s", requests[0]);
    cr_assert(strstr(requests[1], "/containers/" ID "/logs?stdout=1&stderr=1&follow=1&timestamps=1"
                                  "&since=0.000000000"),
              "%s", requests[1]);
    /* nothing acknowledged yet: no cursor; then the batch is accepted */
    cr_assert_eq(cursor_seen, 0);
    for (size_t i = 0; i < n_got; i++)
        bt_segment_unref(held[i], 1), held[i] = NULL;
    cr_assert_eq(cursor_seen, 1795932922000000007LL);
    stop(&x);
}

Test(docker_sd, output_without_newline_is_not_glued_to_the_next_line)
{
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000001Z no-newline");
    frame(&logs_body, 1, "2026-11-29T06:15:25.000000000Z next run\n");
    struct run x;
    start(&x, NULL);
    run_until(&x, 2);
    cr_assert_eq(n_got, 2);
    cr_assert_str_eq(got[0].line, "no-newline");
    cr_assert_str_eq(got[1].line, "next run");
    stop(&x);
}

Test(docker_sd, resumes_from_the_cursor_and_skips_what_was_delivered)
{
    stored_cursor = 1795932922000000003LL;
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000001Z old-1\n");
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000002Z old-2\n");
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000003Z new-3\n");
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000004Z new-4\n");
    struct run x;
    start(&x, NULL);
    run_until(&x, 2);
    cr_assert_eq(n_got, 2);
    cr_assert_str_eq(got[0].line, "new-3");
    cr_assert_str_eq(got[1].line, "new-4");
    cr_assert(strstr(requests[1], "&since=1795932922.000000003"), "%s", requests[1]);
    stop(&x);
}

Test(docker_sd, restarted_container_is_followed_again_from_its_last_line)
{
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000001Z run-1\n");
    struct run x;
    start(&x, NULL);
    run_until(&x, 1);
    cr_assert_eq(n_got, 1);
    /* the container runs again and printed one more line */
    pthread_mutex_lock(&mu);
    frame(&logs_body, 1, "2026-11-29T06:16:00Z run-2\n");
    pthread_mutex_unlock(&mu);
    bt_docker_sd_refresh(x.sd);
    run_until(&x, 2);
    cr_assert_eq(n_got, 2, "run-1 must not come again");
    cr_assert_str_eq(got[1].line, "run-2");
    cr_assert_eq(n_logs, 4, "a follow and a drain per run");
    cr_assert(strstr(requests[2], "follow=0&timestamps=1&since=1795932922.000000002"), "%s",
              requests[2]);
    cr_assert(strstr(requests[4], "follow=1&timestamps=1&since=1795932922.000000002"), "%s",
              requests[4]);
    stop(&x);
}

Test(docker_sd, tty_streams_without_headers_are_read_as_lines)
{
    bt_buf_adds(&logs_body, "2026-11-29T06:15:22Z tty line one\r\n"
                            "2026-11-29T06:15:23Z tty line two\r\n");
    struct run x;
    start(&x, NULL);
    run_until(&x, 2);
    cr_assert_eq(n_got, 2);
    cr_assert_str_eq(got[0].line, "tty line one\r");
    cr_assert_str_eq(got[1].line, "tty line two\r");
    cr_assert(strstr(got[0].labels, "stdout"));
    stop(&x);
}

Test(docker_sd, relabel_drop_means_not_followed)
{
    frame(&logs_body, 1, "2026-11-29T06:15:22Z x\n");
    char text[512], err[256];
    snprintf(text, sizeof(text), "host: unix://%s\n", sock_path);
    struct bt_loop *loop = bt_loop_new();
    struct bt_node *cfg = yaml(text);
    struct bt_node *rel = yaml("- source_labels: [__meta_docker_container_name]\n"
                               "  regex: /web-.*\n  action: drop\n");
    struct bt_relabel *r = bt_relabel_new(rel, err, sizeof(err));
    struct bt_docker_sd_env env = {.loop = loop, .relabel = r, .sink = sink};
    struct bt_docker_sd *sd = bt_docker_sd_new(cfg, &env, err, sizeof(err));
    cr_assert_not_null(sd, "%s", err);
    int64_t until = bt_mono_ns() + 5 * BT_NS_PER_SEC;
    while (bt_docker_sd_containers(sd) == 0 && bt_mono_ns() < until)
        bt_loop_run_once(loop, 50 * BT_NS_PER_MS);
    cr_assert_eq(bt_docker_sd_containers(sd), 1);
    cr_assert_eq(bt_docker_sd_following(sd), 0);
    cr_assert_eq(n_logs, 0);
    bt_docker_sd_free(sd);
    bt_relabel_free(r);
    bt_node_free(cfg);
    bt_node_free(rel);
    bt_loop_free(loop);
}

Test(docker_sd, filters_are_sent_as_docker_json)
{
    struct run x;
    start(&x, "filters:\n  - name: label\n    values: [team=core]\n");
    int64_t until = bt_mono_ns() + 5 * BT_NS_PER_SEC;
    while (n_requests == 0 && bt_mono_ns() < until)
        bt_loop_run_once(x.loop, 50 * BT_NS_PER_MS);
    cr_assert(
        strstr(requests[0], "/containers/json?filters=%7B%22label%22%3A%5B%22team%3Dcore%22%5D%7D"),
        "%s", requests[0]);
    stop(&x);
}

Test(docker_sd, bad_config_is_an_error_with_position)
{
    char err[256];
    struct bt_loop *loop = bt_loop_new();
    struct bt_docker_sd_env env = {.loop = loop, .sink = sink};
    struct bt_node *n = yaml("port: 80\n");
    cr_assert_null(bt_docker_sd_new(n, &env, err, sizeof(err)));
    cr_assert(strstr(err, "host is required"), "%s", err);
    bt_node_free(n);
    n = yaml("host: unix:///x\ntls_config: {}\n");
    cr_assert_null(bt_docker_sd_new(n, &env, err, sizeof(err)));
    cr_assert(strstr(err, "sd.yaml:2:1") && strstr(err, "tls_config"), "%s", err);
    bt_node_free(n);
    n = yaml("host: ftp://x\n");
    cr_assert_null(bt_docker_sd_new(n, &env, err, sizeof(err)));
    cr_assert(strstr(err, "unsupported host"), "%s", err);
    bt_node_free(n);
    bt_loop_free(loop);
}

Test(docker_sd, cursor_records_read_promtail_seconds_and_bpftail_nanoseconds)
{
    char k[96];
    cr_assert_str_eq(bt_docker_sd_cursor_key(k, sizeof(k), ID), "cursor-" ID);
    cr_assert_eq(bt_docker_sd_cursor_decode(1795932922ULL), 1795932922000000000LL);
    cr_assert_eq(bt_docker_sd_cursor_decode(1795932922000000007ULL), 1795932922000000007LL);
    cr_assert_eq(bt_docker_sd_cursor_decode(0), 0);
}

Test(docker_sd, survives_garbage_streams)
{
    unsigned seed = 99;
    /* valid frames, then a frame announcing 3 GiB, then noise */
    frame(&logs_body, 1, "2026-11-29T06:15:22Z fine\n");
    unsigned char big[8] = {1, 0, 0, 0, 0xc0, 0, 0, 0};
    bt_buf_add(&logs_body, big, 8);
    for (int i = 0; i < 4096; i++) {
        char c = (char)rand_r(&seed);
        bt_buf_add(&logs_body, &c, 1);
    }
    struct run x;
    start(&x, NULL);
    run_until(&x, 1);
    cr_assert_eq(n_got, 1);
    cr_assert_str_eq(got[0].line, "fine");
    stop(&x);
}

/* ---- the event stream ---- */

static struct {
    char type[32], action[32], id[80];
    int64_t t;
} evs[8];
static size_t n_evs;

static void on_ev(void *ctx, const struct bt_docker_event *ev)
{
    cr_assert_lt(n_evs, 8);
    snprintf(evs[n_evs].type, sizeof(evs[0].type), "%s", ev->type);
    snprintf(evs[n_evs].action, sizeof(evs[0].action), "%s", ev->action);
    snprintf(evs[n_evs].id, sizeof(evs[0].id), "%s", ev->id);
    evs[n_evs++].t = ev->time_ns;
}

#define EV_START                                                                                   \
    "{\"status\":\"start\",\"id\":\"" ID "\",\"from\":\"bb\",\"Type\":\"container\",\"Action\":"   \
    "\"start\",\"Actor\":{\"ID\":\"" ID "\",\"Attributes\":{\"name\":\"web-1\"}},\"scope\":"       \
    "\"local\",\"time\":1795932922,\"timeNano\":1795932922000000005}\n"
#define EV_DIE_OLD "{\"status\":\"die\",\"id\":\"abc\",\"time\":1795932923}\n"

Test(docker_sd, event_lines_split_anywhere_are_parsed_once_each)
{
    const char *text = EV_START "\r\n" EV_DIE_OLD "not json\n" EV_START;
    size_t len = strlen(text);
    /* every split point of the body into two reads, and one byte per read */
    for (size_t cut = 0; cut <= len + 1; cut++) {
        struct bt_buf acc;
        bt_buf_init(&acc, 4096);
        n_evs = 0;
        int bad;
        if (cut <= len) {
            bad = bt_docker_events_feed(&acc, text, cut, on_ev, NULL);
            bad += bt_docker_events_feed(&acc, text + cut, len - cut, on_ev, NULL);
        } else {
            bad = 0;
            for (size_t i = 0; i < len; i++)
                bad += bt_docker_events_feed(&acc, text + i, 1, on_ev, NULL);
        }
        cr_assert_eq(bad, 1, "cut %zu: the one line that is not JSON", cut);
        cr_assert_eq(n_evs, 3, "cut %zu", cut);
        cr_assert_str_eq(evs[0].type, "container");
        cr_assert_str_eq(evs[0].action, "start");
        cr_assert_str_eq(evs[0].id, ID);
        cr_assert_eq(evs[0].t, 1795932922000000005LL);
        cr_assert_str_eq(evs[1].action, "die", "the old fields when Action is missing");
        cr_assert_str_eq(evs[1].id, "abc");
        cr_assert_str_eq(evs[1].type, "");
        cr_assert_eq(evs[1].t, 1795932923000000000LL);
        cr_assert_str_eq(evs[2].id, ID);
        cr_assert_eq(acc.len, 0);
        bt_buf_free(&acc);
    }
    /* an incomplete line is kept until its newline; one past the buffer's max is an error */
    struct bt_buf acc;
    bt_buf_init(&acc, 64);
    n_evs = 0;
    cr_assert_eq(bt_docker_events_feed(&acc, EV_START, 100, on_ev, NULL), -E2BIG);
    cr_assert_eq(n_evs, 0);
    bt_buf_free(&acc);
}

Test(docker_sd, a_start_event_looks_the_container_up_and_follows_it_from_its_start)
{
    lookup_only = true; /* not running any more: only the lookup (all=1) lists it */
    bt_buf_adds(&events_body, EV_START);
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000001Z short-lived\n");
    struct run x;
    start(&x, "filters:\n  - name: label\n    values: [team=core]\n");
    run_until(&x, 1);
    cr_assert_eq(n_got, 1);
    cr_assert_str_eq(got[0].line, "short-lived");
    cr_assert(strstr(got[0].labels, "container=\"web-1\""), "%s", got[0].labels);
    cr_assert_geq(n_events, 1);
    /* the first stream takes live events (the listing finds what runs already) */
    cr_assert(strstr(event_requests[0], "GET /events?filters=%7B%22type%22%3A%5B%22container%22%5D"
                                        "%2C%22event%22%3A%5B%22start%22%2C%22die%22%2C%22destroy"
                                        "%22%5D%7D HTTP"),
              "%s", event_requests[0]);
    cr_assert_eq(n_lookups, 1);
    /* the configured filters and the container's id */
    cr_assert(strstr(lookup_requests[0], "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22"
                                         "team%3Dcore%22%5D%2C%22id%22%3A%5B%22" ID "%22%5D%7D"),
              "%s", lookup_requests[0]);
    stop(&x);
}

Test(docker_sd, a_broken_event_stream_is_reopened_from_the_last_event)
{
    bt_buf_adds(&events_body, EV_START);
    struct run x;
    start(&x, NULL);
    int64_t until = bt_mono_ns() + 5 * BT_NS_PER_SEC;
    while (n_events < 2 && bt_mono_ns() < until)
        bt_loop_run_once(x.loop, 50 * BT_NS_PER_MS);
    cr_assert_geq(n_events, 2, "reopened after the first stream ended");
    cr_assert(strstr(event_requests[1], "&since=1795932922.000000005 "), "%s", event_requests[1]);
    stop(&x);
}

Test(docker_sd, a_line_held_at_the_end_is_shipped_when_the_container_is_removed_before_the_drain)
{
    drain_gone = true; /* --rm: the container is being removed when the drain asks */
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000001Z done\n");
    frame(&logs_body, 1, "2026-11-29T06:15:22.000000002Z last-without-newline");
    struct run x;
    start(&x, NULL);
    run_until(&x, 2);
    cr_assert_eq(n_got, 2);
    cr_assert_eq(n_logs, 2, "a follow and a drain");
    cr_assert_str_eq(got[0].line, "done");
    cr_assert_str_eq(got[1].line, "last-without-newline");
    cr_assert_eq(got[1].ts, 1795932922000000002LL);
    stop(&x);
}
