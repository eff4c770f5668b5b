/* One container of the Docker plugin: FIFO → decoder → spool → pipeline → shared batcher.
 * See plugin.h and docs/architecture.md ("The Docker logging plugin"). */
#include "plugin/plugin_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/entry.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/spool.h"
#include "push/client.h"
#include "source/docker_fifo.h"
#include "stage/pipeline.h"
#include "util/log.h"
#include "util/timeutil.h"

#define COMP "plugin"
/* A spool record: [int64 ts_ns LE][u8 stream][u8 flags][line]. */
#define REC_HDR 10
#define REC_UNTERMINATED 1
#define REC_TRUNCATED 2
#define MAX_LINE (1u << 20)

static const char *const stream_names[] = {"stdout", "stderr", "other"};
static const char *const reject_reasons[] = {"frame_too_large", "bad_frame", "truncated_frame",
                                             "line_too_long"};

static struct bt_series *series(struct pl_container *c, enum bt_metric_type t, const char *name,
                                const char *help, const char *extra)
{
    char lab[512];
    snprintf(lab, sizeof(lab), "%s%s%s", c->mlabels, extra ? "," : "", extra ? extra : "");
    return t == BT_COUNTER ? bt_metrics_counter(c->p->metrics, name, help, lab)
                           : bt_metrics_gauge(c->p->metrics, name, help, lab);
}

static void count_drop(struct pl_container *c, const char *reason, uint64_t n)
{
    char r[64];
    snprintf(r, sizeof(r), "reason=\"%s\"", reason);
    bt_counter_add(series(c, BT_COUNTER, "bpftail_plugin_dropped_entries_total",
                          "Lines of a container not shipped, by reason.", r),
                   (double)n);
    char g[96];
    snprintf(g, sizeof(g), "host=\"\",reason=\"%s\",tenant=\"\"", reason);
    bt_counter_add(bt_metrics_counter(c->p->metrics, "bpftail_dropped_entries_total",
                                      "Entries dropped, by reason.", g),
                   (double)n);
}

/* Forgets pumped records that end at or before offset; returns how many. */
static uint64_t fly_pop(struct pl_container *c, uint64_t offset)
{
    uint64_t k = 0;
    while (c->fly_n && c->fly[c->fly_head] <= offset) {
        c->fly_head = (c->fly_head + 1) % c->fly_cap;
        c->fly_n--;
        k++;
    }
    return k;
}

static int fly_push(struct pl_container *c, uint64_t end)
{
    if (c->fly_n == c->fly_cap) {
        size_t ncap = c->fly_cap ? c->fly_cap * 2 : 1024;
        uint64_t *n = malloc(ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        for (size_t i = 0; i < c->fly_n; i++)
            n[i] = c->fly[(c->fly_head + i) % c->fly_cap];
        free(c->fly);
        c->fly = n;
        c->fly_cap = ncap;
        c->fly_head = 0;
    }
    c->fly[(c->fly_head + c->fly_n) % c->fly_cap] = end;
    c->fly_n++;
    return 0;
}

/* Lines the spool's bound dropped since the last look. The spool counts every record after
 * its commit; those already pumped are in batches that still go to Loki (or are counted by
 * the client), so only the others are lost here. */
static void spool_stats(struct pl_container *c)
{
    if (!c->spool)
        return;
    uint64_t d = bt_spool_dropped(c->spool);
    if (d > c->dropped_seen) {
        uint64_t pumped = fly_pop(c, bt_spool_committed(c->spool));
        uint64_t lost = d - c->dropped_seen;
        lost = pumped < lost ? lost - pumped : 0;
        if (lost)
            count_drop(c, "spool_full", lost);
        c->dropped_seen = d;
    }
    bt_gauge_set(c->m_spool_bytes, (double)bt_spool_bytes(c->spool));
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '\v' &&
            s[i] != '\f')
            return false;
    return true;
}

/* A decoded line: into the spool. Whitespace-only lines are skipped (as Loki's driver does)
 * and counted; a TTY's "\r" line ending is cut. */
static void on_line(void *ctx, const struct bt_dfifo_line *l)
{
    struct pl_container *c = ctx;
    size_t n = l->len;
    if (n && l->line[n - 1] == '\r')
        n--;
    bt_counter_inc(c->m_lines);
    if (blank(l->line, n)) {
        bt_counter_inc(c->m_empty);
        count_drop(c, "empty_line", 1);
        return;
    }
    unsigned char hdr[REC_HDR];
    uint64_t ts = (uint64_t)l->ts_ns;
    for (int i = 0; i < 8; i++)
        hdr[i] = (unsigned char)(ts >> (8 * i));
    hdr[8] = (unsigned char)l->stream;
    hdr[9] = (unsigned char)((l->unterminated ? REC_UNTERMINATED : 0) |
                             (l->truncated ? REC_TRUNCATED : 0));
    if (!c->spool) { /* it could not be opened: read on, so dockerd never blocks */
        count_drop(c, "spool_error", 1);
        return;
    }
    bt_buf_reset(&c->rec);
    if (bt_buf_add(&c->rec, hdr, sizeof(hdr)) < 0 || bt_buf_add(&c->rec, l->line, n) < 0) {
        count_drop(c, "out_of_memory", 1);
        return;
    }
    int rc = bt_spool_append(c->spool, c->rec.ptr, c->rec.len);
    if (rc == -EFBIG) {
        count_drop(c, "spool_full", 1);
    } else if (rc < 0) {
        static struct bt_ratelimit rl = BT_RATELIMIT_INIT(10);
        uint64_t sup;
        if (bt_ratelimit_ok(&rl, &sup))
            BT_ERROR(COMP, "cannot write to the spool: line dropped", "container=%.12s err=%s",
                     c->id, strerror(-rc));
        count_drop(c, "spool_error", 1);
    }
}

static void on_reject(void *ctx, const char *reason, uint64_t bytes)
{
    struct pl_container *c = ctx;
    char r[64];
    snprintf(r, sizeof(r), "reason=\"%s\"", reason);
    bt_counter_inc(series(c, BT_COUNTER, "bpftail_plugin_frames_rejected_total",
                          "FIFO frames (or bytes of joined lines) rejected, by reason.", r));
    static struct bt_ratelimit rl = BT_RATELIMIT_INIT(10);
    uint64_t sup;
    if (bt_ratelimit_ok(&rl, &sup))
        BT_WARN(COMP, "bad data on a container's FIFO, skipped",
                "container=%.12s reason=%s "
                "bytes=%llu suppressed=%llu",
                c->id, reason, (unsigned long long)bytes, (unsigned long long)sup);
}

/* The pipeline's kept entries go to the shared client's batcher. */
static void sink(void *ctx, const struct bt_entry *e)
{
    struct pl_container *c = ctx;
    if (!c->client || !c->client->batcher)
        return;
    if (bt_batcher_add(c->client->batcher, e, bt_mono_ns()) < 0)
        BT_ERROR(COMP, "out of memory adding an entry to a batch", NULL);
}

static void on_commit(void *ctx, uint64_t committed)
{
    struct pl_container *c = ctx;
    spool_stats(c); /* drops first: they are weighed against the records still in flight */
    bt_spool_commit(c->spool, committed);
    fly_pop(c, committed);
    bt_gauge_set(c->m_spool_bytes, (double)bt_spool_bytes(c->spool));
}

static void close_fifo(struct pl_container *c)
{
    if (c->fd < 0)
        return;
    bt_loop_del_fd(c->p->loop, c->fd);
    close(c->fd);
    c->fd = -1;
}

static void at_eof(struct pl_container *c)
{
    close_fifo(c);
    bt_dfifo_eof(c->dec);
    if (c->spool)
        bt_spool_flush(c->spool);
    BT_INFO(COMP, "container's FIFO closed", "container=%.12s name=%s frames=%llu", c->id, c->name,
            (unsigned long long)bt_dfifo_frames(c->dec));
}

void pl_container_read(struct pl_container *c)
{
    static char buf[PL_READ_CHUNK];
    bool got = false;
    if (!c->attached)
        return; /* the attach timer reads first */
    for (int i = 0; i < PL_READS_PER_ROUND && c->fd >= 0; i++) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n > 0) {
            got = true;
            bt_counter_add(c->m_bytes, (double)n);
            bt_dfifo_feed(c->dec, buf, (size_t)n);
            if ((size_t)n < sizeof(buf))
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            BT_ERROR(COMP, "cannot read a container's FIFO, closing it", "container=%.12s err=%s",
                     c->id, strerror(errno));
        at_eof(c); /* n == 0: dockerd closed its end after StopLogging */
        got = true;
    }
    if (!got)
        return;
    int rc = c->spool ? bt_spool_flush(c->spool) : 0;
    if (rc < 0)
        BT_ERROR(COMP, "cannot write the spool", "container=%.12s err=%s", c->id, strerror(-rc));
    spool_stats(c);
    pl_request_more(c->p);
}

static void on_fifo(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    pl_container_read(arg);
}

bool pl_container_pump(struct pl_container *c)
{
    size_t budget = PL_PUMP_BYTES;
    bool more = false;
    if (!c->spool) {
        c->piped_flushed = c->attached && c->fd < 0;
        return false;
    }
    while (budget) {
        if (pl_client_full(c->client))
            return false;
        const void *rec;
        size_t len;
        uint64_t start, end;
        int rc = bt_spool_read(c->spool, &rec, &len, &start, &end);
        if (rc < 0) {
            static struct bt_ratelimit rl = BT_RATELIMIT_INIT(10);
            uint64_t sup;
            if (bt_ratelimit_ok(&rl, &sup))
                BT_ERROR(COMP, "cannot read the spool", "container=%.12s err=%s", c->id,
                         strerror(-rc));
            return false;
        }
        if (rc == 0)
            break;
        /* Out of memory here costs only exactness: without a segment the record does not
         * hold the commit back, without its ring slot a bound drop may count it as lost. */
        struct bt_segment *seg = bt_segment_new(c->ack, start, end);
        if (seg)
            fly_push(c, end);
        if (len >= REC_HDR) {
            const unsigned char *r = rec;
            uint64_t ts = 0;
            for (int i = 0; i < 8; i++)
                ts |= (uint64_t)r[i] << (8 * i);
            unsigned s = r[8] < 3 ? r[8] : 2;
            struct bt_entry e = {.labels = &c->labels[s],
                                 .ts_ns = (int64_t)ts,
                                 .line = (const char *)r + REC_HDR,
                                 .line_len = len - REC_HDR,
                                 .seg = seg};
            bt_pipeline_process(c->pipeline, &e);
        }
        bt_segment_unref(seg, 1);
        budget = len >= budget ? 0 : budget - len;
    }
    more = bt_spool_read_offset(c->spool) < bt_spool_end(c->spool);
    if (!more && c->fd < 0 && !c->piped_flushed && !c->p->stopping) {
        /* Everything is read and pumped: lines a stage holds (multiline) go now. */
        bt_pipeline_flush(c->pipeline);
        c->piped_flushed = true;
    }
    return more && !pl_client_full(c->client);
}

bool pl_container_done(const struct pl_container *c)
{
    return c->attached && c->fd < 0 && c->piped_flushed && (!c->spool || bt_spool_empty(c->spool));
}

int64_t pl_container_deadline(const struct pl_container *c)
{
    return bt_pipeline_deadline(c->pipeline);
}

void pl_container_tick(struct pl_container *c, int64_t now)
{
    bt_pipeline_tick(c->pipeline, now);
}

void pl_container_stop(struct pl_container *c)
{
    c->stop_requested = true;
    pl_container_read(c);
}

void pl_container_quiesce(struct pl_container *c)
{
    close_fifo(c);
    bt_dfifo_flush(c->dec);
    if (c->spool)
        bt_spool_flush(c->spool);
    spool_stats(c);
}

static void remove_series(struct pl_container *c)
{
    static const char *const names[] = {"bpftail_plugin_fifo_lines_total",
                                        "bpftail_plugin_fifo_bytes_total",
                                        "bpftail_plugin_spool_bytes"};
    for (size_t i = 0; i < 3; i++)
        bt_metrics_remove(c->p->metrics, names[i], c->mlabels);
    char lab[600];
    static const char *const drops[] = {"empty_line", "spool_full", "spool_error", "out_of_memory"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(lab, sizeof(lab), "%s,reason=\"%s\"", c->mlabels, drops[i]);
        bt_metrics_remove(c->p->metrics, "bpftail_plugin_dropped_entries_total", lab);
    }
    for (size_t i = 0; i < 4; i++) {
        snprintf(lab, sizeof(lab), "%s,reason=\"%s\"", c->mlabels, reject_reasons[i]);
        bt_metrics_remove(c->p->metrics, "bpftail_plugin_frames_rejected_total", lab);
    }
}

/* Removes dir and everything in it (a container's state: request file, spool). */
static void remove_tree(const char *dir)
{
    char cmdless[4096];
    /* Two levels at most: dir/request.json and dir/spool/ (the spool removes its own files
     * in bt_spool_destroy). */
    snprintf(cmdless, sizeof(cmdless), "%s/request.json", dir);
    unlink(cmdless);
    snprintf(cmdless, sizeof(cmdless), "%s/request.json.tmp", dir);
    unlink(cmdless);
    if (rmdir(dir) < 0 && errno != ENOENT)
        BT_WARN(COMP, "cannot remove a container's state directory", "dir=%s err=%s", dir,
                strerror(errno));
}

void pl_container_free(struct pl_container *c, bool destroy)
{
    if (!c)
        return;
    if (c->attach_timer)
        bt_loop_del_timer(c->p->loop, c->attach_timer);
    close_fifo(c);
    bt_pipeline_free(c->pipeline);
    if (c->ack)
        bt_ack_owner_close(c->ack);
    if (c->spool) {
        if (destroy)
            bt_spool_destroy(c->spool);
        else
            bt_spool_close(c->spool);
    }
    if (destroy && c->dir)
        remove_tree(c->dir);
    bt_dfifo_free(c->dec);
    if (c->mlabels)
        remove_series(c);
    if (c->client)
        pl_client_put(c->client);
    for (int i = 0; i < 3; i++)
        bt_labels_free(&c->labels[i]);
    bt_plugin_opts_free(&c->opts);
    bt_buf_free(&c->rec);
    free(c->fly);
    free(c->file);
    free(c->dir);
    free(c->id);
    free(c->name);
    free(c->mlabels);
    free(c);
}

static void unknown_opt(void *ctx, const char *key)
{
    struct bt_plugin *p = ctx;
    for (size_t i = 0; i < p->n_unknown; i++)
        if (strcmp(p->unknown_seen[i], key) == 0)
            return;
    BT_WARN(COMP, "unknown log-opt ignored (logged once)", "key=%s", key);
    bt_counter_inc(p->m_unknown_opt);
    char **n = realloc(p->unknown_seen, (p->n_unknown + 1) * sizeof(*n));
    if (!n)
        return;
    p->unknown_seen = n;
    if ((n[p->n_unknown] = strdup(key)))
        p->n_unknown++;
}

static int open_spool(struct pl_container *c, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/spool", c->dir);
    uint64_t seg = 8u << 20;
    if (c->opts.spool_max && c->opts.spool_max / 4 < seg)
        seg = c->opts.spool_max / 4 ? c->opts.spool_max / 4 : 1;
    struct bt_spool_config sc = {.dir = path, .segment_bytes = seg, .max_bytes = c->opts.spool_max};
    char serr[512] = "";
    c->spool = bt_spool_open(c->p->group, &sc, serr, sizeof(serr));
    if (!c->spool) {
        snprintf(err, errlen, "%s", serr);
        return -EIO;
    }
    if (bt_spool_corrupt(c->spool))
        count_drop(c, "spool_corrupt", bt_spool_corrupt(c->spool));
    c->ack = bt_ack_owner_new(bt_spool_committed(c->spool), on_commit, c);
    if (!c->ack) {
        bt_spool_close(c->spool);
        c->spool = NULL;
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* Opens the FIFO (not yet watched). A restored container whose FIFO is gone only drains its
 * spool. */
static int open_fifo(struct pl_container *c, bool restored, char *err, size_t errlen)
{
    c->fd = open(c->file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (c->fd >= 0)
        return 0;
    int e = errno;
    if (restored && e == ENOENT) {
        BT_INFO(COMP, "container's FIFO is gone: shipping what its spool holds",
                "container=%.12s name=%s", c->id, c->name);
        bt_dfifo_eof(c->dec);
        return 0;
    }
    snprintf(err, errlen, "cannot open %s: %s", c->file, strerror(e));
    return -e;
}

/* Opens the spool and starts reading. Runs just after StartLogging has been answered: opening
 * a spool may fsync its commit file, and Docker's request must not wait for a disk. A spool
 * that cannot be opened does not stop the reading: its lines are counted as dropped. */
static void attach(struct pl_container *c)
{
    char err[600] = "";
    c->attached = true;
    if (open_spool(c, err, sizeof(err)) < 0)
        BT_ERROR(COMP, "cannot open a container's spool: its lines are dropped, counted",
                 "container=%.12s dir=%s err=\"%s\"", c->id, c->dir, err);
    if (c->fd >= 0) {
        int rc = bt_loop_add_fd(c->p->loop, c->fd, EPOLLIN, on_fifo, c);
        if (rc < 0) {
            BT_ERROR(COMP, "cannot watch a container's FIFO", "container=%.12s err=%s", c->id,
                     strerror(-rc));
            close(c->fd);
            c->fd = -1;
        }
    }
    BT_INFO(COMP, "reading container", "container=%.12s name=%s fifo=%s spooled_bytes=%llu", c->id,
            c->name, c->file, (unsigned long long)(c->spool ? bt_spool_bytes(c->spool) : 0));
    /* No writer left (a restart after dockerd closed it) shows only as a read of 0. */
    pl_container_read(c);
    pl_request_more(c->p);
}

static void on_attach(struct bt_loop *l, uint64_t id, void *arg)
{
    struct pl_container *c = arg;
    c->attach_timer = 0;
    attach(c);
}

struct pl_container *pl_container_start(struct bt_plugin *p, const struct bt_plugin_info *in,
                                        const char *dir, bool restored, char *err, size_t errlen)
{
    struct pl_container *c = calloc(1, sizeof(*c));
    if (!c)
        goto oom;
    c->p = p;
    c->fd = -1;
    bt_buf_init(&c->rec, MAX_LINE + REC_HDR + 64);
    for (int i = 0; i < 3; i++)
        bt_labels_init(&c->labels[i]);
    c->file = strdup(in->file);
    c->dir = strdup(dir);
    c->id = strdup(in->container_id);
    c->name = strdup(in->container_name);
    if (!c->file || !c->dir || !c->id || !c->name)
        goto oom;
    char ename[300];
    if (asprintf(&c->mlabels, "container_id=\"%s\",container_name=\"%s\"", c->id,
                 bt_metrics_escape(ename, sizeof(ename), c->name)) < 0) {
        c->mlabels = NULL;
        goto oom;
    }
    if (bt_plugin_opts_parse(in, &c->opts, unknown_opt, p, err, errlen) < 0 ||
        bt_plugin_labels(in, &c->opts, p->hostname, &c->labels[0], err, errlen) < 0)
        goto fail;
    for (int i = 0; i < 3; i++) {
        if ((i && bt_labels_copy(&c->labels[i], &c->labels[0]) < 0) ||
            bt_labels_set(&c->labels[i], "source", stream_names[i]) < 0)
            goto oom;
    }
    c->pipeline = bt_pipeline_new(c->opts.stages, "docker", p->metrics, sink, c, err, errlen);
    if (!c->pipeline)
        goto fail;
    c->client = pl_client_get(p, &c->opts.client, err, errlen);
    if (!c->client)
        goto fail;
    struct bt_dfifo_config dc = {.max_frame = MAX_LINE, .max_line = MAX_LINE};
    c->dec = bt_dfifo_new(&dc, on_line, on_reject, c);
    if (!c->dec)
        goto oom;
    c->m_lines = series(c, BT_COUNTER, "bpftail_plugin_fifo_lines_total",
                        "Lines decoded from a container's FIFO.", NULL);
    c->m_bytes = series(c, BT_COUNTER, "bpftail_plugin_fifo_bytes_total",
                        "Bytes read from a container's FIFO.", NULL);
    c->m_spool_bytes = series(c, BT_GAUGE, "bpftail_plugin_spool_bytes",
                              "Bytes a container's spool holds on disk.", NULL);
    c->m_empty = NULL; /* counted through count_drop */
    if (open_fifo(c, restored, err, errlen) < 0)
        goto fail;
    if (restored) {
        BT_INFO(COMP, "container taken up again", "container=%.12s name=%s", c->id, c->name);
        attach(c);
    } else if (!(c->attach_timer = bt_loop_add_timer(p->loop, 0, 0, on_attach, c))) {
        goto oom;
    }
    return c;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    pl_container_free(c, false);
    return NULL;
}
