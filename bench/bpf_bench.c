/*
 * bpf_bench: measurements for the BPF watcher (run as root; numbers go to bench/RESULTS.md).
 *
 *   bpf_bench overhead [n]     CPU ns per 1-byte write() to an UNWATCHED file and per getppid(),
 *                              without programs, then with the BPF watcher loaded and 1,000
 *                              other files watched; then ns per write to a WATCHED file with
 *                              the events consumed
 *   bpf_bench latency [n]      write() -> wake-up of the loop thread that reads the line,
 *                              BPF watcher and inotify in the same run: p50/p90/p99/max
 *   bpf_bench push [n]         write() -> Loki accepted it, with batchwait 100 ms: a line every
 *                              150 ms is read on wake-up, batched, encoded and pushed to an
 *                              in-process test Loki; BPF watcher and inotify in the same run
 *   bpf_bench idle [seconds]   1,000 watched files, no writes: CPU used and loop wake-ups
 *
 * Built by cmake/bpf.cmake as build/bench/bpf_bench when BT_BPF is ON.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "push/batch.h"
#include "push/client.h"
#include "config/config.h"
#include "core/entry.h"
#include "fake_loki.h"
#include "core/labels.h"
#include "core/loop.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "watch/watch.h"
#include "watch/watch_bpf.h"

static char g_dir[256];

static void die(const char *what, int err)
{
    fprintf(stderr, "bpf_bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
    exit(1);
}

static void mkdir_tmp(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(g_dir, sizeof(g_dir), "%s/bpf-bench-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_dir))
        die("mkdtemp", errno);
}

static void rm_tmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bpf_bench: cleanup of %s failed\n", g_dir);
}

static void noop_fn(void *ctx, const struct bt_watch_event *ev)
{
    (void)ev;
    (*(uint64_t *)ctx)++;
}

static int open_bpf(struct bt_watch *w, bt_watch_fn fn, void *ctx)
{
    memset(w, 0, sizeof(*w));
    w->ops = &bt_watch_bpf_ops;
    w->fn = fn;
    w->ctx = ctx;
    return w->ops->open(w);
}

/* Creates n files f<i> in dir and watches them. */
static void watch_many(struct bt_watch *w, int n)
{
    char p[512];
    int fd;

    for (int i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "%s/f%d.log", g_dir, i);
        fd = open(p, O_WRONLY | O_CREAT, 0644);
        if (fd < 0)
            die("create", errno);
        close(fd);
        if (w->ops->add_file(w, p, 0, 0) < 0)
            die("add_file", EINVAL);
    }
}

/* CPU time of this thread: other load on the machine does not count, unlike wall time. */
static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * BT_NS_PER_SEC + ts.tv_nsec;
}

static double ns_per_write(int fd, long n)
{
    int64_t t0 = thread_cpu_ns();
    for (long i = 0; i < n; i++)
        if (write(fd, "x", 1) != 1)
            die("write", errno);
    return (double)(thread_cpu_ns() - t0) / (double)n;
}

static double ns_per_getppid(long n)
{
    int64_t t0 = thread_cpu_ns();
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    return (double)(thread_cpu_ns() - t0) / (double)n;
}

static double median3(double a, double b, double c)
{
    if ((a <= b && b <= c) || (c <= b && b <= a))
        return b;
    if ((b <= a && a <= c) || (c <= a && a <= b))
        return a;
    return c;
}

struct drainer {
    struct bt_watch *w;
    volatile int stop;
};

static void *drain_thread(void *arg)
{
    struct drainer *d = arg;

    while (!d->stop) {
        d->w->ops->dispatch(d->w);
        usleep(1000);
    }
    d->w->ops->dispatch(d->w);
    return NULL;
}

static int cmd_overhead(long n)
{
    struct bt_watch w;
    uint64_t events = 0, kev = 0, drops = 0;
    double base[3], with[3], gbase[3], gwith[3], d[3];
    char p[512];
    int fd, rc;

    mkdir_tmp();
    snprintf(p, sizeof(p), "%s/unwatched.log", g_dir);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die("open", errno);
    /* Alternate without/with the programs, so load from elsewhere hits both alike. */
    for (int r = 0; r < 3; r++) {
        if (ftruncate(fd, 0) < 0)
            die("ftruncate", errno);
        base[r] = ns_per_write(fd, n);
        gbase[r] = ns_per_getppid(n);
        rc = open_bpf(&w, noop_fn, &events);
        if (rc < 0)
            die("bpf open", rc);
        watch_many(&w, 1000);
        if (ftruncate(fd, 0) < 0)
            die("ftruncate", errno);
        with[r] = ns_per_write(fd, n);
        gwith[r] = ns_per_getppid(n);
        d[r] = with[r] - base[r];
        printf("round %d: unrelated write %7.1f -> %7.1f ns (+%6.1f)   getppid %6.1f -> %6.1f ns\n",
               r + 1, base[r], with[r], d[r], gbase[r], gwith[r]);
        if (r < 2)
            w.ops->close(&w);
    }
    printf("median added cost per unrelated write: %.1f ns (%ld writes per measurement)\n",
           median3(d[0], d[1], d[2]), n);
    close(fd);
    snprintf(p, sizeof(p), "%s/f0.log", g_dir);
    fd = open(p, O_WRONLY | O_APPEND);
    {
        struct drainer dr = {.w = &w, .stop = 0};
        pthread_t th;
        double ns;
        pthread_create(&th, NULL, drain_thread, &dr);
        ns = ns_per_write(fd, n / 5);
        dr.stop = 1;
        pthread_join(th, NULL);
        bt_watch_bpf_stats(&w, &kev, &drops);
        printf("write to a WATCHED file, events consumed: %.1f ns/op (%ld writes, events %llu, "
               "ring drops %llu)\n",
               ns, n / 5, (unsigned long long)kev, (unsigned long long)drops);
    }
    close(fd);
    w.ops->close(&w);
    rm_tmp();
    return 0;
}

/* ---- latency: a writer thread appends "<mono ns>\n" lines; the loop thread reads them ---- */

#define LAT_MAX 100000

struct lat {
    struct bt_loop *loop;
    int rfd; /* the file, read side */
    int64_t *samples;
    int n, want;
    char buf[65536];
    size_t have;
    struct bt_watch *w;
    int ino_fd;
};

static void lat_read(struct lat *L)
{
    ssize_t r;
    int64_t now = bt_mono_ns();

    while ((r = read(L->rfd, L->buf + L->have, sizeof(L->buf) - L->have - 1)) > 0) {
        char *p = L->buf, *nl;
        L->have += (size_t)r;
        L->buf[L->have] = '\0';
        while ((nl = memchr(p, '\n', L->have - (size_t)(p - L->buf)))) {
            *nl = '\0';
            if (L->n < L->want)
                L->samples[L->n++] = now - strtoll(p, NULL, 10);
            p = nl + 1;
        }
        L->have -= (size_t)(p - L->buf);
        memmove(L->buf, p, L->have);
    }
    if (L->n >= L->want)
        bt_loop_stop(L->loop);
}

static void lat_bpf_ev(void *ctx, const struct bt_watch_event *ev)
{
    (void)ev;
    lat_read(ctx);
}

static void lat_bpf_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct lat *L = arg;
    (void)l;
    (void)fd;
    (void)events;
    L->w->ops->dispatch(L->w);
}

static void lat_ino_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    char evbuf[4096];
    (void)l;
    (void)events;
    while (read(fd, evbuf, sizeof(evbuf)) > 0)
        ;
    lat_read(arg);
}

struct writer {
    const char *path;
    int n;
    int gap_us;
};

static void *writer_thread(void *arg)
{
    struct writer *wr = arg;
    int fd = open(wr->path, O_WRONLY | O_APPEND);
    char line[64];

    usleep(100000);
    for (int i = 0; i < wr->n; i++) {
        int len = snprintf(line, sizeof(line), "%lld\n", (long long)bt_mono_ns());
        if (write(fd, line, (size_t)len) != len)
            break;
        usleep((useconds_t)wr->gap_us);
    }
    close(fd);
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, int64_t *s, int n)
{
    qsort(s, (size_t)n, sizeof(*s), cmp64);
    printf("%-10s n=%d  p50 %7.1f us  p90 %7.1f us  p99 %7.1f us  max %8.1f us\n", name, n,
           s[n / 2] / 1e3, s[n * 9 / 10] / 1e3, s[n * 99 / 100] / 1e3, s[n - 1] / 1e3);
}

static void run_latency(const char *name, int use_bpf, int n)
{
    struct lat L = {0};
    struct bt_watch w;
    struct writer wr;
    pthread_t th;
    char p[512];
    uint64_t dummy = 0;
    int fd, rc;

    (void)dummy;
    snprintf(p, sizeof(p), "%s/lat-%s.log", g_dir, name);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    close(fd);
    L.loop = bt_loop_new();
    L.samples = calloc((size_t)n, sizeof(int64_t));
    L.want = n;
    L.rfd = open(p, O_RDONLY);
    if (use_bpf) {
        rc = open_bpf(&w, lat_bpf_ev, &L);
        if (rc < 0)
            die("bpf open", rc);
        L.w = &w;
        w.ops->add_file(&w, p, 0, 0);
        bt_loop_add_fd(L.loop, w.ops->fd(&w), EPOLLIN, lat_bpf_io, &L);
    } else {
        L.ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        inotify_add_watch(L.ino_fd, p, IN_MODIFY);
        bt_loop_add_fd(L.loop, L.ino_fd, EPOLLIN, lat_ino_io, &L);
    }
    wr.path = p;
    wr.n = n;
    wr.gap_us = 2000;
    pthread_create(&th, NULL, writer_thread, &wr);
    bt_loop_run(L.loop);
    pthread_join(th, NULL);
    report(name, L.samples, L.n);
    if (use_bpf) {
        bt_loop_del_fd(L.loop, w.ops->fd(&w));
        w.ops->close(&w);
    } else {
        bt_loop_del_fd(L.loop, L.ino_fd);
        close(L.ino_fd);
    }
    close(L.rfd);
    free(L.samples);
    bt_loop_free(L.loop);
}

static int cmd_latency(int n)
{
    mkdir_tmp();
    run_latency("bpf", 1, n);
    run_latency("inotify", 0, n);
    rm_tmp();
    return 0;
}

/* ---- push: write() -> wake -> read -> batch (batchwait 100 ms) -> encode -> POST -> 204 ---- */

struct push {
    struct bt_loop *loop;
    struct bt_batcher *bb;
    struct bt_client *client;
    struct bt_labels labels;
    uint64_t timer;
    int rfd;
    char buf[65536];
    size_t have;
    int64_t *samples;
    int n, want;
    struct bt_watch *w;
    int ino_fd;
};

static void push_tick(struct bt_loop *l, uint64_t id, void *arg)
{
    struct push *P = arg;
    int64_t d;

    (void)l;
    (void)id;
    P->timer = 0;
    bt_batcher_tick(P->bb, bt_mono_ns());
    d = bt_batcher_deadline(P->bb);
    if (d != INT64_MAX)
        P->timer = bt_loop_add_timer(P->loop, d - bt_mono_ns(), 0, push_tick, P);
}

static void push_read(struct push *P)
{
    ssize_t r;

    while ((r = read(P->rfd, P->buf + P->have, sizeof(P->buf) - P->have - 1)) > 0) {
        char *p = P->buf, *nl;
        P->have += (size_t)r;
        while ((nl = memchr(p, '\n', P->have - (size_t)(p - P->buf)))) {
            struct bt_entry e = {.labels = &P->labels,
                                 .ts_ns = bt_now_ns(),
                                 .line = p,
                                 .line_len = (size_t)(nl - p)};
            bt_batcher_add(P->bb, &e, bt_mono_ns());
            p = nl + 1;
        }
        P->have -= (size_t)(p - P->buf);
        memmove(P->buf, p, P->have);
    }
    if (!P->timer && bt_batcher_deadline(P->bb) != INT64_MAX)
        P->timer =
            bt_loop_add_timer(P->loop, bt_batcher_deadline(P->bb) - bt_mono_ns(), 0, push_tick, P);
}

static void push_ready(void *ctx, struct bt_batch *b)
{
    struct push *P = ctx;
    bt_client_submit(P->client, b);
}

static void push_done(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct push *P = arg;
    struct bt_batch *b;
    int64_t now = bt_mono_ns();
    uint64_t drain;

    (void)events;
    if (read(fd, &drain, sizeof(drain)) < 0 && errno != EAGAIN)
        return;
    while ((b = bt_client_take_done(P->client))) {
        for (size_t s = 0; s < b->n_streams && b->outcome == BT_PUSH_OK; s++) {
            for (size_t i = 0; i < b->streams[s].n; i++) {
                const struct bt_batch_entry *e = &b->streams[s].entries[i];
                if (P->n < P->want)
                    P->samples[P->n++] = now - strtoll(b->arena.ptr + e->line_off, NULL, 10);
            }
        }
        bt_batch_release(b);
    }
    if (P->n >= P->want)
        bt_loop_stop(l);
}

static void push_bpf_ev(void *ctx, const struct bt_watch_event *ev)
{
    (void)ev;
    push_read(ctx);
}

static void push_bpf_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct push *P = arg;
    (void)l;
    (void)fd;
    (void)events;
    P->w->ops->dispatch(P->w);
}

static void push_ino_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    char evbuf[4096];
    (void)l;
    (void)events;
    while (read(fd, evbuf, sizeof(evbuf)) > 0)
        ;
    push_read(arg);
}

static void run_push(const char *name, int use_bpf, int n, const char *url)
{
    struct bt_client_config ccfg;
    struct bt_batcher_config bcfg = {.batchsize = 1 << 20, .batchwait_ns = 100 * BT_NS_PER_MS};
    struct push P;
    struct bt_watch w;
    struct writer wr;
    pthread_t th;
    char p[512];
    int fd, rc;

    memset(&P, 0, sizeof(P));
    memset(&ccfg, 0, sizeof(ccfg));
    ccfg.url = (char *)url;
    ccfg.batchwait_ns = bcfg.batchwait_ns;
    ccfg.batchsize = bcfg.batchsize;
    ccfg.min_backoff_ns = 100 * BT_NS_PER_MS;
    ccfg.max_backoff_ns = BT_NS_PER_SEC;
    ccfg.max_retries = 3;
    ccfg.timeout_ns = 5 * BT_NS_PER_SEC;
    snprintf(p, sizeof(p), "%s/push-%s.log", g_dir, name);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    close(fd);
    P.loop = bt_loop_new();
    P.client = bt_client_new(&ccfg, NULL);
    P.bb = bt_batcher_new(&bcfg, push_ready, NULL, &P);
    if (!P.loop || !P.client || !P.bb)
        die("push setup", ENOMEM);
    bt_labels_init(&P.labels);
    bt_labels_set(&P.labels, "job", "bench");
    P.samples = calloc((size_t)n, sizeof(int64_t));
    P.want = n;
    P.rfd = open(p, O_RDONLY);
    bt_loop_add_fd(P.loop, bt_client_notify_fd(P.client), EPOLLIN, push_done, &P);
    if (use_bpf) {
        rc = open_bpf(&w, push_bpf_ev, &P);
        if (rc < 0)
            die("bpf open", rc);
        P.w = &w;
        w.ops->add_file(&w, p, 0, 0);
        bt_loop_add_fd(P.loop, w.ops->fd(&w), EPOLLIN, push_bpf_io, &P);
    } else {
        P.ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        inotify_add_watch(P.ino_fd, p, IN_MODIFY);
        bt_loop_add_fd(P.loop, P.ino_fd, EPOLLIN, push_ino_io, &P);
    }
    wr.path = p;
    wr.n = n;
    wr.gap_us = 150000;
    pthread_create(&th, NULL, writer_thread, &wr);
    bt_loop_run(P.loop);
    pthread_join(th, NULL);
    report(name, P.samples, P.n);
    bt_loop_del_fd(P.loop, bt_client_notify_fd(P.client));
    if (use_bpf) {
        bt_loop_del_fd(P.loop, w.ops->fd(&w));
        w.ops->close(&w);
    } else {
        bt_loop_del_fd(P.loop, P.ino_fd);
        close(P.ino_fd);
    }
    bt_client_free(P.client);
    bt_batcher_free(P.bb);
    bt_labels_free(&P.labels);
    close(P.rfd);
    free(P.samples);
    bt_loop_free(P.loop);
}

static int cmd_push(int n)
{
    struct bt_fake_loki_opts o = {.port = 0, .discard = true, .quiet = true};
    struct bt_fake_loki *loki = bt_fake_loki_start_opts(&o);

    if (!loki)
        die("test Loki", errno);
    mkdir_tmp();
    printf("write() -> pushed and accepted, batchwait 100 ms, one line every 150 ms\n");
    run_push("bpf", 1, n, bt_fake_loki_url(loki));
    run_push("inotify", 0, n, bt_fake_loki_url(loki));
    rm_tmp();
    bt_fake_loki_stop(loki);
    return 0;
}

/* ---- idle: nothing written; count CPU and wake-ups ---- */

static void idle_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_watch *w = arg;
    (void)l;
    (void)fd;
    (void)events;
    w->ops->dispatch(w);
}

static void idle_stop(struct bt_loop *l, uint64_t id, void *arg)
{
    (void)id;
    (void)arg;
    bt_loop_stop(l);
}

static void idle_reconcile(struct bt_loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    (*(uint64_t *)arg)++;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int cmd_idle(int seconds)
{
    struct bt_watch w;
    struct bt_loop *l = bt_loop_new();
    uint64_t events = 0, reconciles = 0, w0;
    double c0, c1;
    int rc;

    mkdir_tmp();
    rc = open_bpf(&w, noop_fn, &events);
    if (rc < 0)
        die("bpf open", rc);
    watch_many(&w, 1000);
    bt_loop_add_fd(l, w.ops->fd(&w), EPOLLIN, idle_io, &w);
    /* The agent's slow reconcile timer (10 s), the only periodic wake-up allowed. */
    bt_loop_add_timer(l, 10 * BT_NS_PER_SEC, 10 * BT_NS_PER_SEC, idle_reconcile, &reconciles);
    bt_loop_add_timer(l, (int64_t)seconds * BT_NS_PER_SEC, 0, idle_stop, NULL);
    w0 = bt_loop_wakeups(l);
    c0 = cpu_s();
    bt_loop_run(l);
    c1 = cpu_s();
    printf("idle %ds, 1000 watched files: cpu %.4f s = %.4f%% of a core, loop wake-ups %llu "
           "(reconcile timer fired %llu), watch events %llu\n",
           seconds, c1 - c0, (c1 - c0) * 100.0 / seconds,
           (unsigned long long)(bt_loop_wakeups(l) - w0), (unsigned long long)reconciles,
           (unsigned long long)events);
    bt_loop_del_fd(l, w.ops->fd(&w));
    w.ops->close(&w);
    bt_loop_free(l);
    rm_tmp();
    return 0;
}

int main(int argc, char **argv)
{
    bt_log_set_level(BT_LOG_WARN);
    if (argc >= 2 && strcmp(argv[1], "overhead") == 0)
        return cmd_overhead(argc > 2 ? strtol(argv[2], NULL, 10) : 1000000);
    if (argc >= 2 && strcmp(argv[1], "latency") == 0)
        return cmd_latency(argc > 2 ? (int)strtol(argv[2], NULL, 10) : 2000);
    if (argc >= 2 && strcmp(argv[1], "push") == 0)
        return cmd_push(argc > 2 ? (int)strtol(argv[2], NULL, 10) : 200);
    if (argc >= 2 && strcmp(argv[1], "idle") == 0)
        return cmd_idle(argc > 2 ? (int)strtol(argv[2], NULL, 10) : 60);
    fprintf(stderr, "usage: bpf_bench overhead [n] | latency [n] | push [n] | idle [seconds]\n");
    return 2;
}
