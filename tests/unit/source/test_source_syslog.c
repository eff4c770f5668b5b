#include <criterion/criterion.h>
#include <errno.h>
#include <netdb.h>
#include <time.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config/node.h"
#include "core/ack.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/resolve.h"
#include "source/relabel.h"
#include "source/source_syslog.h"
#include "util/timeutil.h"

#define MAXE 20000

struct seen {
    char (*lines)[48];
    char labels[256];
    struct bt_segment **segs;
    size_t n;
    bool hold;
};

static void sink(void *ctx, const struct bt_entry *e)
{
    struct seen *s = ctx;
    cr_assert_lt(s->n, MAXE);
    snprintf(s->lines[s->n], sizeof(s->lines[0]), "%.*s", (int)e->line_len, e->line);
    size_t cl;
    snprintf(s->labels, sizeof(s->labels), "%s", bt_labels_canon(e->labels, &cl));
    if (s->hold) {
        bt_segment_ref(e->seg, 1);
        s->segs[s->n] = e->seg;
    }
    s->n++;
}

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/bt-syslog-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(source_syslog, .init = setup, .fini = teardown);

struct fixture {
    struct bt_loop *l;
    struct bt_metrics *m;
    struct bt_resolver *r;
    struct bt_relabel *rl;
    struct bt_node *cfg;
    struct bt_syslog *s;
    struct seen *seen;
};

static void start_with(struct fixture *f, const char *yaml, uint64_t queue_bytes,
                       struct bt_resolver *(*make_resolver)(struct bt_loop *l,
                                                            struct bt_metrics *m))
{
    char err[256] = "", qdir[128];
    memset(f, 0, sizeof(*f));
    f->l = bt_loop_new();
    if (make_resolver) {
        /* __syslog_connection_hostname into the label "host" */
        static const char rules[] = "- source_labels: [__syslog_connection_hostname]\n"
                                    "  target_label: host\n";
        struct bt_node *rn = bt_yaml_parse(rules, strlen(rules), "r.yaml", err, sizeof(err));
        cr_assert_not_null(rn, "%s", err);
        f->rl = bt_relabel_new(rn, err, sizeof(err));
        cr_assert_not_null(f->rl, "%s", err);
        bt_node_free(rn);
        f->m = bt_metrics_new();
        f->r = make_resolver(f->l, f->m);
    }
    f->cfg = bt_yaml_parse(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    cr_assert_not_null(f->cfg, "%s", err);
    f->seen = calloc(1, sizeof(*f->seen));
    f->seen->lines = calloc(MAXE, sizeof(*f->seen->lines));
    f->seen->segs = calloc(MAXE, sizeof(*f->seen->segs));
    snprintf(qdir, sizeof(qdir), "%s/q", dir);
    struct bt_receiver_env env = {.loop = f->l,
                                  .metrics = f->m,
                                  .resolver = f->r,
                                  .relabel = f->rl,
                                  .job = "t",
                                  .sink = sink,
                                  .ctx = f->seen,
                                  .queue_dir = qdir,
                                  .queue_bytes = queue_bytes};
    f->s = bt_syslog_new(bt_node_get(f->cfg, "syslog"), &env, err, sizeof(err));
    cr_assert_not_null(f->s, "%s", err);
}

static void start(struct fixture *f, const char *yaml, uint64_t queue_bytes)
{
    start_with(f, yaml, queue_bytes, NULL);
}

static void stop(struct fixture *f)
{
    bt_syslog_free(f->s);
    bt_resolver_free(f->r);
    bt_relabel_free(f->rl);
    bt_metrics_free(f->m);
    bt_node_free(f->cfg);
    bt_loop_free(f->l);
    free(f->seen->lines);
    free(f->seen->segs);
    free(f->seen);
}

static void spin_until(struct fixture *f, size_t n, int max_rounds)
{
    for (int i = 0; i < max_rounds && f->seen->n < n; i++)
        bt_loop_run_once(f->l, 10 * 1000 * 1000);
}

static int connect_to(int port, int type)
{
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

Test(source_syslog, tcp_framings_mixed_and_split_byte_by_byte)
{
    struct fixture f;
    start(&f,
          "syslog:\n  listen_address: 127.0.0.1:0\n  labels: {job: s}\n"
          "  label_structured_data: true\n",
          0);
    int fd = connect_to(bt_syslog_port(f.s), SOCK_STREAM);
    const char *wire = "25 <13>1 - h app - - - first"
                       "<13>1 - h app - - - second\r\n"
                       "\n\n"
                       "28 <13>1 - h app - - - 3 digits"
                       "<13>1 - h app - - [bad sd\n"
                       "<13>1 - h app - - - fourth\n";
    for (const char *p = wire; *p; p++) {
        cr_assert_eq(write(fd, p, 1), 1);
        bt_loop_run_once(f.l, 0);
    }
    spin_until(&f, 4, 200);
    cr_assert_eq(f.seen->n, 4, "got %zu", f.seen->n);
    cr_assert_str_eq(f.seen->lines[0], "first");
    cr_assert_str_eq(f.seen->lines[1], "second");
    cr_assert_str_eq(f.seen->lines[2], "3 digits");
    cr_assert_str_eq(f.seen->lines[3], "fourth");
    cr_assert_str_eq(f.seen->labels, "{job=\"s\"}");
    cr_assert_eq(bt_syslog_connections(f.s), 1);
    close(fd);
    for (int i = 0; i < 20 && bt_syslog_connections(f.s); i++)
        bt_loop_run_once(f.l, 10 * 1000 * 1000);
    cr_assert_eq(bt_syslog_connections(f.s), 0, "closed by the peer: closed here");
    stop(&f);
}

/* A burst that ends on the last read of a wake-up is handled in that wake-up: the socket has
 * nothing more to signal, so bytes left in the buffer would wait for the sender's next line. */
Test(source_syslog, burst_ending_on_the_last_read_round_is_handled_at_once)
{
    struct fixture f;
    /* 52 + 12 bytes a read: 16 reads take about a kilobyte, a burst size tried below */
    start(&f,
          "syslog:\n  listen_address: 127.0.0.1:0\n  labels: {job: s}\n"
          "  max_message_length: 52\n",
          0);
    int fd = connect_to(bt_syslog_port(f.s), SOCK_STREAM);
    size_t want = 0;
    char msg[64];
    for (int burst = 1; burst <= 60; burst++) {
        for (int i = 0; i < burst; i++) {
            int n = snprintf(msg, sizeof(msg), "<13>1 - h a - - - b%d.%d\n", burst, i);
            cr_assert_eq(write(fd, msg, (size_t)n), n);
        }
        want += (size_t)burst;
        /* the loop runs only while the socket signals: no timer may rescue held bytes */
        for (int i = 0; i < 40 && f.seen->n < want; i++)
            bt_loop_run_once(f.l, 0);
        cr_assert_eq(f.seen->n, want, "a burst of %d: %zu of %zu handled", burst, f.seen->n, want);
    }
    close(fd);
    stop(&f);
}

Test(source_syslog, full_queue_stops_reading_and_resumes_where_it_stopped)
{
    struct fixture f;
    start(&f, "syslog:\n  listen_address: 127.0.0.1:0\n  labels: {job: s}\n", 64 << 10);
    f.seen->hold = true; /* nothing acknowledged: the queue fills */
    int fd = connect_to(bt_syslog_port(f.s), SOCK_STREAM);
    char msg[256];
    size_t total = 3000;
    for (size_t i = 0; i < total; i++) {
        int n = snprintf(msg, sizeof(msg), "<13>1 - h app - - - seq=%zu %s\n", i,
                         "padding padding padding padding padding padding padding");
        cr_assert_eq(write(fd, msg, (size_t)n), n);
        if (i % 50 == 0)
            bt_loop_run_once(f.l, 0);
    }
    for (int i = 0; i < 50; i++)
        bt_loop_run_once(f.l, 1000 * 1000);
    size_t held = f.seen->n;
    cr_assert_gt(held, 100);
    cr_assert_lt(held, total, "a 64 KiB queue cannot take %zu messages", total);
    cr_assert_eq(bt_syslog_connections(f.s), 1, "a full queue does not close the connection");
    /* Loki accepts: the queue drains, the connection is read again from where it stopped */
    f.seen->hold = false;
    for (size_t i = 0; i < held; i++)
        bt_segment_unref(f.seen->segs[i], 1);
    spin_until(&f, total, 2000);
    cr_assert_eq(f.seen->n, total, "got %zu of %zu", f.seen->n, total);
    for (size_t i = 0; i < total; i++) {
        char want[32];
        snprintf(want, sizeof(want), "seq=%zu ", i);
        cr_assert_eq(strncmp(f.seen->lines[i], want, strlen(want)), 0, "%zu: %s", i,
                     f.seen->lines[i]);
    }
    close(fd);
    stop(&f);
}

Test(source_syslog, udp_datagrams_and_oversize_drops)
{
    struct fixture f;
    start(&f,
          "syslog:\n  listen_address: 127.0.0.1:0\n  listen_protocol: udp\n"
          "  syslog_format: rfc3164\n  max_message_length: 100\n  labels: {job: u}\n",
          0);
    int fd = connect_to(bt_syslog_port(f.s), SOCK_DGRAM);
    const char *a = "<13>Dec  2 11:00:00 h app: one\n";
    char big[300];
    memset(big, 'x', sizeof(big));
    memcpy(big, "<13>", 4);
    const char *b = "<13>Dec  2 11:00:00 h app[1]: two";
    cr_assert_eq(send(fd, a, strlen(a), 0), (ssize_t)strlen(a));
    cr_assert_eq(send(fd, big, sizeof(big), 0), (ssize_t)sizeof(big));
    cr_assert_eq(send(fd, b, strlen(b), 0), (ssize_t)strlen(b));
    spin_until(&f, 2, 200);
    cr_assert_eq(f.seen->n, 2);
    cr_assert_str_eq(f.seen->lines[0], "one");
    cr_assert_str_eq(f.seen->lines[1], "two");
    close(fd);
    stop(&f);
}

Test(source_syslog, config_errors_name_the_key)
{
    const char *bad[][2] = {
        {"syslog:\n  labels: {a: b}\n", "listen_address is required"},
        {"syslog:\n  listen_address: x:1\n  bogus: 1\n", "unknown key"},
        {"syslog:\n  listen_address: x:1\n  listen_protocol: sctp\n", "tcp or udp"},
        {"syslog:\n  listen_address: x:1\n  syslog_format: rfc9999\n", "rfc5424 or rfc3164"},
        {"syslog:\n  listen_address: x:1\n  tls_config: {cert_file: a}\n", "key_file are required"},
        {"syslog:\n  listen_address: x:1\n  tls_config: {insecure_skip_verify: true}\n",
         "not supported"},
        {"syslog:\n  listen_address: x:1\n  idle_timeout: -1s\n", "idle_timeout"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[256] = "";
        struct bt_node *n = bt_yaml_parse(bad[i][0], strlen(bad[i][0]), "t.yaml", err, sizeof(err));
        cr_assert_not_null(n);
        struct bt_receiver_env env = {.job = "t"};
        struct bt_syslog *s = bt_syslog_new(bt_node_get(n, "syslog"), &env, err, sizeof(err));
        cr_assert_null(s, "accepted: %s", bad[i][0]);
        cr_assert(strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
        cr_assert(strstr(err, "t.yaml:"), "%s", err);
        bt_node_free(n);
    }
}

/* ---- __syslog_connection_hostname ---- */

static int lookup_ms;

/* Stands in for DNS (no query leaves the machine): every address is "peer-a", after
 * lookup_ms. */
static int slow_lookup(const struct sockaddr *sa, socklen_t len, char *name, size_t namelen)
{
    (void)sa;
    (void)len;
    struct timespec ts = {lookup_ms / 1000, (long)(lookup_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    snprintf(name, namelen, "peer-a.");
    return 0;
}

static struct bt_resolver *slow_resolver(struct bt_loop *l, struct bt_metrics *m)
{
    struct bt_resolver_opts o = {.lookup = slow_lookup};
    return bt_resolver_new(l, m, &o);
}

static struct bt_resolver *real_resolver(struct bt_loop *l, struct bt_metrics *m)
{
    return bt_resolver_new(l, m, NULL);
}

static void spin_ms(struct fixture *f, int ms)
{
    int64_t end = bt_mono_ns() + (int64_t)ms * BT_NS_PER_MS;
    while (bt_mono_ns() < end)
        bt_loop_run_once(f->l, 5 * BT_NS_PER_MS);
}

Test(source_syslog, tcp_connection_waits_for_its_name_then_reads)
{
    struct fixture f;
    lookup_ms = 300;
    start_with(&f, "syslog:\n  listen_address: 127.0.0.1:0\n  labels: {job: t}\n", 0,
               slow_resolver);
    int fd = connect_to(bt_syslog_port(f.s), SOCK_STREAM);
    const char *msg = "<13>1 2024-01-01T00:00:00Z h app - - - one\n"
                      "<13>1 2024-01-01T00:00:00Z h app - - - two\n";
    cr_assert_eq(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
    spin_ms(&f, 150);
    cr_assert_eq(f.seen->n, 0, "not read before the name is known");
    cr_assert_eq(bt_syslog_connections(f.s), 1);
    spin_until(&f, 2, 300);
    cr_assert_eq(f.seen->n, 2);
    cr_assert_str_eq(f.seen->lines[0], "one");
    cr_assert_str_eq(f.seen->lines[1], "two");
    cr_assert(strstr(f.seen->labels, "host=\"peer-a\""), "%s", f.seen->labels);
    /* a second connection from the same address: from the cache, at once */
    int fd2 = connect_to(bt_syslog_port(f.s), SOCK_STREAM);
    const char *m3 = "<13>1 2024-01-01T00:00:00Z h app - - - three\n";
    cr_assert_eq(write(fd2, m3, strlen(m3)), (ssize_t)strlen(m3));
    spin_until(&f, 3, 20);
    cr_assert_eq(f.seen->n, 3);
    cr_assert(strstr(f.seen->labels, "host=\"peer-a\""), "%s", f.seen->labels);
    cr_assert_eq(bt_metrics_sum(f.m, "bpftail_resolver_lookups_total", ""), 1);
    close(fd);
    close(fd2);
    stop(&f);
}

Test(source_syslog, tcp_goes_on_without_a_name_after_the_deadline)
{
    struct fixture f;
    lookup_ms = 2600;
    start_with(&f, "syslog:\n  listen_address: 127.0.0.1:0\n  labels: {job: t}\n", 0,
               slow_resolver);
    int fd = connect_to(bt_syslog_port(f.s), SOCK_STREAM);
    const char *msg = "<13>1 2024-01-01T00:00:00Z h app - - - late\n";
    cr_assert_eq(write(fd, msg, strlen(msg)), (ssize_t)strlen(msg));
    int64_t t0 = bt_mono_ns();
    spin_until(&f, 1, 300);
    int64_t took = bt_mono_ns() - t0;
    cr_assert_eq(f.seen->n, 1);
    cr_assert_str_eq(f.seen->lines[0], "late");
    cr_assert_null(strstr(f.seen->labels, "host="), "no name: %s", f.seen->labels);
    cr_assert_geq(took, 1900 * BT_NS_PER_MS);
    cr_assert_eq(bt_metrics_sum(f.m, "bpftail_resolver_timeouts_total", ""), 1);
    close(fd);
    stop(&f);
}

Test(source_syslog, udp_sender_is_held_in_order_and_bounded_while_resolving)
{
    struct fixture f;
    lookup_ms = 400;
    start_with(&f,
               "syslog:\n  listen_address: 127.0.0.1:0\n  listen_protocol: udp\n"
               "  labels: {job: u}\n",
               0, slow_resolver);
    int fd = connect_to(bt_syslog_port(f.s), SOCK_DGRAM);
    int sent = 0;
    for (int i = 0; i < 1100; i++) {
        char m[96];
        int n = snprintf(m, sizeof(m), "<13>1 2024-01-01T00:00:00Z h app - - - d%d", i);
        cr_assert_eq(send(fd, m, (size_t)n, 0), n);
        sent++;
        if (i % 100 == 99)
            bt_loop_run_once(f.l, 0); /* keep the socket's buffer from overflowing */
    }
    spin_until(&f, 1024, 300);
    spin_ms(&f, 50);
    cr_assert_eq(f.seen->n, 1024, "held up to the bound: %zu", f.seen->n);
    for (int i = 0; i < 1024; i++) {
        char want[16];
        snprintf(want, sizeof(want), "d%d", i);
        cr_assert_str_eq(f.seen->lines[i], want);
    }
    cr_assert(strstr(f.seen->labels, "host=\"peer-a\""), "%s", f.seen->labels);
    cr_assert_eq(bt_metrics_sum(f.m, "bpftail_dropped_entries_total", "resolve_queue_full"),
                 sent - 1024);
    close(fd);
    stop(&f);
}

Test(source_syslog, loopback_name_from_getnameinfo_for_tcp_and_udp)
{
    struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char want[NI_MAXHOST] = "";
    if (getnameinfo((struct sockaddr *)&lo, sizeof(lo), want, sizeof(want), NULL, 0, NI_NAMEREQD))
        want[0] = '\0';
    cr_assert(want[0], "127.0.0.1 has no name here: this test cannot tell");
    char label[NI_MAXHOST + 16];
    snprintf(label, sizeof(label), "host=\"%s\"", want);
    for (int udp = 0; udp < 2; udp++) {
        struct fixture f;
        start_with(&f,
                   udp ? "syslog:\n  listen_address: 127.0.0.1:0\n  listen_protocol: udp\n"
                       : "syslog:\n  listen_address: 127.0.0.1:0\n",
                   0, real_resolver);
        int fd = connect_to(bt_syslog_port(f.s), udp ? SOCK_DGRAM : SOCK_STREAM);
        const char *msg = "<13>1 2024-01-01T00:00:00Z h app - - - hello\n";
        cr_assert_eq(send(fd, msg, strlen(msg), 0), (ssize_t)strlen(msg));
        spin_until(&f, 1, 300);
        cr_assert_eq(f.seen->n, 1);
        cr_assert(strstr(f.seen->labels, label), "%s wanted, got %s", label, f.seen->labels);
        close(fd);
        stop(&f);
    }
}
