#include "agent/agent.h"

#include "push/batch.h"
#include "core/caps.h"
#include "push/client.h"
#include "config/config.h"
#include "core/entry.h"
#include "source/fim.h"
#include "source/relabel.h"
#include "source/source_docker.h"
#include "source/source_journal.h"
#include "source/file_sd.h"
#include "source/docker_sd.h"
#include "config/node.h"
#include "source/positions.h"
#include "core/httpd.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "stage/pipeline.h"
#include "source/source_file.h"
#include "watch/watch_bpf.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SHUTDOWN_POLL_NS (20 * BT_NS_PER_MS)
/* Sealed batches a client may have queued or in flight before file sources pause. Files are
 * the buffer: reading further ahead than this only costs memory, since pushes are the
 * bottleneck. A few batches keep the push thread busy while the loop fills the next one. */
#define MAX_QUEUED_BATCHES 2
#define RESUME_QUEUED_BATCHES 1

struct agent_client {
    struct bt_agent *a;
    struct bt_client_config *cfg;
    struct bt_batcher_config bcfg;
    struct bt_batcher *batcher;
    struct bt_client *client;
    struct bt_series *m_too_old;
};

struct agent_job {
    struct bt_agent *a;
    struct bt_relabel *relabel;
    struct bt_docker_disc *disc;
    struct bt_journal *journal;
    struct bt_file_sd **fsds;
    size_t n_fsds;
    struct bt_docker_sd **sds;
    size_t n_sds;
    struct bt_scrape_config *sc;
    struct bt_pipeline *pipeline;
};

struct bt_agent {
    struct bt_config *cfg;
    struct bt_config *owned_cfg; /* a config loaded by a reload (else cfg is the caller's) */
    struct agent_job fim_job;    /* FIM's sink context: outlives the jobs a reload replaces */
    const struct bt_cli *cli;
    struct bt_loop *loop;
    struct bt_metrics *metrics;
    struct agent_client *clients;
    size_t n_clients;
    struct agent_job *jobs;
    size_t n_jobs;
    struct bt_files *files;
    struct bt_fim *fim;
    const char *watcher_shown; /* backend named in bpftail_watcher_info */
    struct bt_httpd *httpd;
    int sigfd;
    uint64_t tick_timer;
    int64_t tick_at;
    bool dry_run;
    bool check_only;
    bool stopping;
    bool paused;
    int64_t stop_deadline;
    uint64_t stop_timer;
    size_t memory_limit;
    /* readline rate limiter (limits_config) */
    double tokens;
    int64_t refill_at;
    struct bt_series *m_rate_drop, *m_rate_drop_bytes;
    struct bt_series *m_inflight, *m_paused, *m_pause_mem, *m_pause_queue;
    struct bt_series *m_reload_ok, *m_reload_fail;
    struct bt_buf dry;
};

/* ---- memory ceiling -------------------------------------------------------------------- */

static size_t inflight_bytes(const struct bt_agent *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n_clients; i++) {
        n += bt_batcher_bytes(a->clients[i].batcher);
        n += bt_client_pending_bytes(a->clients[i].client);
    }
    return n;
}

static size_t max_queued(const struct bt_agent *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n_clients; i++) {
        size_t q = bt_client_pending(a->clients[i].client);
        if (q > n)
            n = q;
    }
    return n;
}

/* Pauses file sources when bytes held in batches and in flight reach the memory ceiling, or a
 * client has MAX_QUEUED_BATCHES waiting; resumes once both have drained well below. */
static void check_pressure(struct bt_agent *a)
{
    if (!a->files || a->stopping)
        return;
    size_t n = inflight_bytes(a);
    size_t q = max_queued(a);
    bt_gauge_set(a->m_inflight, (double)n);
    if (!a->paused && (n >= a->memory_limit || q >= MAX_QUEUED_BATCHES)) {
        a->paused = true;
        bt_files_pause(a->files);
        for (size_t i = 0; i < a->n_jobs; i++)
            if (a->jobs[i].journal)
                bt_journal_pause(a->jobs[i].journal);
        bt_gauge_set(a->m_paused, 1);
        bt_counter_inc(n >= a->memory_limit ? a->m_pause_mem : a->m_pause_queue);
        BT_DEBUG("agent", "sources paused", "inflight_bytes=%zu queued_batches=%zu", n, q);
    } else if (a->paused && n <= a->memory_limit / 4 * 3 && q <= RESUME_QUEUED_BATCHES) {
        a->paused = false;
        bt_gauge_set(a->m_paused, 0);
        bt_files_resume(a->files);
        for (size_t i = 0; i < a->n_jobs; i++)
            if (a->jobs[i].journal)
                bt_journal_resume(a->jobs[i].journal);
        BT_DEBUG("agent", "sources resumed", "inflight_bytes=%zu queued_batches=%zu", n, q);
    }
}

/* ---- the sink after the pipeline -------------------------------------------------------- */

static bool rate_allow(struct bt_agent *a, const struct bt_entry *e)
{
    const struct bt_limits_config *lim = &a->cfg->limits;
    if (!lim->readline_rate_enabled)
        return true;
    int64_t now = bt_mono_ns();
    a->tokens += (double)(now - a->refill_at) / 1e9 * lim->readline_rate;
    a->refill_at = now;
    if (a->tokens > lim->readline_burst)
        a->tokens = lim->readline_burst;
    if (a->tokens >= 1) {
        a->tokens -= 1;
        return true;
    }
    bt_counter_inc(a->m_rate_drop);
    bt_counter_add(a->m_rate_drop_bytes, (double)e->line_len);
    return false;
}

static void print_entry(struct bt_agent *a, const struct bt_entry *e)
{
    char ts[64];
    time_t sec = (time_t)(e->ts_ns / BT_NS_PER_SEC);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long long)(e->ts_ns % BT_NS_PER_SEC));
    size_t llen;
    const char *labels = bt_labels_canon(e->labels, &llen);
    bt_buf_reset(&a->dry);
    if (bt_buf_addf(&a->dry, "%s\t%s\t", ts, labels ? labels : "{}") == 0 &&
        bt_buf_add(&a->dry, e->line, e->line_len) == 0 && bt_buf_add(&a->dry, "\n", 1) == 0)
        fwrite(a->dry.ptr, 1, a->dry.len, stdout);
    fflush(stdout);
}

static void agent_sink(void *ctx, const struct bt_entry *e)
{
    struct agent_job *job = ctx;
    struct bt_agent *a = job->a;
    if (!rate_allow(a, e))
        return;
    if (a->dry_run) {
        print_entry(a, e);
        return;
    }
    int64_t now = bt_mono_ns();
    for (size_t i = 0; i < a->n_clients; i++) {
        struct agent_client *c = &a->clients[i];
        if (c->cfg->max_age_ns > 0 && e->ts_ns < bt_now_ns() - c->cfg->max_age_ns) {
            bt_counter_inc(c->m_too_old);
            continue;
        }
        if (bt_batcher_add(c->batcher, e, now) < 0)
            BT_ERROR("agent", "out of memory adding an entry to a batch", NULL);
    }
    check_pressure(a);
}

/* Entries from sources enter the job's pipeline. */
static void job_source_sink(void *ctx, const struct bt_entry *e)
{
    struct agent_job *job = ctx;
    bt_pipeline_process(job->pipeline, e);
}

/* ---- batches and clients -------------------------------------------------------------- */

static void batch_ready(void *ctx, struct bt_batch *b)
{
    struct agent_client *c = ctx;
    if (bt_client_submit(c->client, b) < 0) {
        /* Only after stop: the client hands the batch back as ABANDONED through take_done. */
        BT_DEBUG("agent", "batch submitted after stop", NULL);
    }
}

static void batch_drop(void *ctx, const struct bt_entry *e, const char *reason)
{
    struct agent_client *c = ctx;
    char labels[128];
    snprintf(labels, sizeof(labels), "host=\"%s\",reason=\"%s\",tenant=\"\"",
             bt_client_host(c->client), reason);
    bt_counter_inc(bt_metrics_counter(c->a->metrics, "bpftail_dropped_entries_total",
                                      "Entries dropped, by reason.", labels));
    bt_counter_add(bt_metrics_counter(c->a->metrics, "bpftail_dropped_bytes_total",
                                      "Line bytes of dropped entries, by reason.", labels),
                   (double)e->line_len);
}

static void drain_done(struct agent_client *c)
{
    struct bt_batch *b;
    while ((b = bt_client_take_done(c->client)))
        bt_batch_release(b);
}

static void client_done(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct agent_client *c = arg;
    drain_done(c);
    check_pressure(c->a);
}

/* ---- timers ----------------------------------------------------------------------------- */

static int64_t next_deadline(struct bt_agent *a)
{
    int64_t d = INT64_MAX;
    for (size_t i = 0; i < a->n_clients; i++) {
        int64_t x = bt_batcher_deadline(a->clients[i].batcher);
        if (x < d)
            d = x;
    }
    for (size_t i = 0; i < a->n_jobs; i++) {
        int64_t x = bt_pipeline_deadline(a->jobs[i].pipeline);
        if (x < d)
            d = x;
    }
    return d;
}

static void on_tick(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_agent *a = arg;
    a->tick_timer = 0;
    a->tick_at = INT64_MAX;
    int64_t now = bt_mono_ns();
    if (!a->stopping)
        for (size_t i = 0; i < a->n_jobs; i++)
            bt_pipeline_tick(a->jobs[i].pipeline, now);
    for (size_t i = 0; i < a->n_clients; i++)
        bt_batcher_tick(a->clients[i].batcher, now);
}

/* Before each sleep, arm one timer for the earliest batch or pipeline deadline. Nothing wakes
 * the loop when nothing is pending. */
static void before_sleep(struct bt_loop *l, void *arg)
{
    struct bt_agent *a = arg;
    int64_t d = next_deadline(a);
    if (d == a->tick_at)
        return;
    if (a->tick_timer)
        bt_loop_del_timer(l, a->tick_timer);
    a->tick_timer = 0;
    a->tick_at = d;
    if (d != INT64_MAX) {
        int64_t delay = d - bt_mono_ns();
        a->tick_timer = bt_loop_add_timer(l, delay > 0 ? delay : 0, 0, on_tick, a);
    }
}

/* ---- shutdown --------------------------------------------------------------------------- */

static size_t pending_total(struct bt_agent *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n_clients; i++)
        n += bt_client_pending(a->clients[i].client);
    return n;
}

static void shutdown_poll(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_agent *a = arg;
    for (size_t i = 0; i < a->n_clients; i++)
        drain_done(&a->clients[i]);
    if (pending_total(a) == 0 || bt_mono_ns() >= a->stop_deadline) {
        bt_loop_del_timer(l, id);
        bt_loop_stop(l);
    }
}

static void begin_shutdown(struct bt_agent *a, const char *why)
{
    if (a->stopping) {
        BT_WARN("agent", "second signal: stopping now", NULL);
        a->stop_deadline = bt_mono_ns();
        return;
    }
    a->stopping = true;
    a->stop_deadline = bt_mono_ns() + a->cfg->agent.shutdown_timeout_ns;
    char d[32];
    BT_INFO("agent", "shutting down", "signal=%s deadline=%s", why,
            bt_format_duration(d, sizeof(d), a->cfg->agent.shutdown_timeout_ns));
    if (a->files)
        bt_files_pause(a->files);
    /* Held partial lines and multiline blocks are not flushed: their bytes are not committed,
     * so they are read again after a restart instead of being shipped cut in two. */
    for (size_t i = 0; i < a->n_clients; i++)
        bt_batcher_flush(a->clients[i].batcher);
    a->stop_timer = bt_loop_add_timer(a->loop, 0, SHUTDOWN_POLL_NS, shutdown_poll, a);
}

static int agent_reload(struct bt_agent *a, const char *why, char *err, size_t errlen);

static void on_signal(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_agent *a = arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            char err[2048] = "";
            if (!a->stopping)
                agent_reload(a, "SIGHUP", err, sizeof(err));
            continue;
        }
        begin_shutdown(a, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    }
}

/* ---- reload ----------------------------------------------------------------------------- */

static int build_jobs(struct bt_agent *a, char *err, size_t errlen);
static int build_clients(struct bt_agent *a, char *err, size_t errlen);
static int build_targets(struct bt_agent *a, char *err, size_t errlen);

/* Frees clients and jobs as bt_agent_free does, leaving the loop, metrics, FIM, the HTTP
 * server and the file targets (marked stale: the rebuild takes back those it still has). */
static void teardown_sources(struct bt_agent *a)
{
    for (size_t i = 0; i < a->n_clients; i++) {
        bt_client_stop(a->clients[i].client, bt_mono_ns());
        drain_done(&a->clients[i]);
        bt_loop_del_fd(a->loop, bt_client_notify_fd(a->clients[i].client));
        bt_client_free(a->clients[i].client);
        bt_batcher_free(a->clients[i].batcher);
    }
    free(a->clients);
    a->clients = NULL;
    a->n_clients = 0;
    bt_files_mark_targets(a->files);
    for (size_t i = 0; i < a->n_jobs; i++) {
        bt_pipeline_free(a->jobs[i].pipeline);
        bt_docker_disc_free(a->jobs[i].disc);
        bt_journal_free(a->jobs[i].journal);
        for (size_t k = 0; k < a->jobs[i].n_fsds; k++)
            bt_file_sd_free(a->jobs[i].fsds[k]);
        free(a->jobs[i].fsds);
        for (size_t k = 0; k < a->jobs[i].n_sds; k++)
            bt_docker_sd_free(a->jobs[i].sds[k]);
        free(a->jobs[i].sds);
        bt_relabel_free(a->jobs[i].relabel);
    }
    free(a->jobs);
    a->jobs = NULL;
    a->n_jobs = 0;
}

/* Builds jobs, clients and targets again (the file targets module is kept), drops the file
 * targets the config no longer has, and lets sources read again. */
static int build_sources(struct bt_agent *a, char *err, size_t errlen)
{
    int rc = build_jobs(a, err, errlen);
    if (rc == 0 && !a->dry_run)
        rc = build_clients(a, err, errlen);
    if (rc == 0)
        rc = build_targets(a, err, errlen);
    if (rc == 0) {
        bt_files_drop_stale_targets(a->files);
        a->paused = false;
        bt_gauge_set(a->m_paused, 0);
        bt_files_resume(a->files);
    }
    return rc;
}

/* Loads the config again and, if it is valid, applies it: sources pause, held entries and
 * batches are flushed, pushes drain (for at most shutdown_timeout), positions are saved, and
 * jobs, clients and targets are built again from the new config; files tailed before and
 * after continue at their committed offsets. An invalid config changes nothing. 0 or -errno. */
static int agent_reload(struct bt_agent *a, const char *why, char *err, size_t errlen)
{
    struct bt_config *nc = bt_config_load(a->cli, err, errlen);
    struct bt_agent *check = NULL;
    if (nc) {
        char cerr[2048] = "";
        check = bt_agent_new(nc, a->cli, 1, cerr, sizeof(cerr));
        if (!check)
            snprintf(err, errlen, "%s", cerr[0] ? cerr : "invalid config");
        bt_agent_free(check);
    }
    if (!nc || !check) {
        BT_ERROR("agent", "config reload rejected, the running config stays",
                 "trigger=%s err=\"%s\"", why, err);
        bt_config_free(nc);
        bt_counter_inc(a->m_reload_fail);
        return -EINVAL;
    }
    BT_INFO("agent", "reloading config", "trigger=%s", why);
    if (a->files)
        bt_files_pause(a->files);
    for (size_t i = 0; i < a->n_jobs; i++)
        bt_pipeline_flush(a->jobs[i].pipeline);
    for (size_t i = 0; i < a->n_clients; i++)
        bt_batcher_flush(a->clients[i].batcher);
    /* Bounded wait on the loop thread: acknowledged batches move the committed offsets, so
     * the rebuilt sources neither re-send what was delivered nor skip what was not. */
    int64_t deadline = bt_mono_ns() + a->cfg->agent.shutdown_timeout_ns;
    for (;;) {
        for (size_t i = 0; i < a->n_clients; i++)
            drain_done(&a->clients[i]);
        if (pending_total(a) == 0 || bt_mono_ns() >= deadline)
            break;
        struct timespec ts = {0, SHUTDOWN_POLL_NS / 2};
        nanosleep(&ts, NULL);
    }
    if (pending_total(a)) {
        /* Abandoned batches never release their segments: those files' committed offsets
         * would stop. Close every file instead (positions saved); the rebuilt targets reopen
         * them at the committed offsets and read the unsent lines again. */
        BT_WARN("agent", "reload: pushes still pending, their lines will be read again",
                "batches=%zu", pending_total(a));
        bt_files_mark_targets(a->files);
        bt_files_drop_stale_targets(a->files);
    }
    teardown_sources(a);
    struct bt_config *old = a->cfg;
    a->cfg = nc;
    int rc = build_sources(a, err, errlen);
    if (rc < 0) {
        BT_ERROR("agent", "config reload failed while applying, going back to the old config",
                 "err=\"%s\"", err);
        teardown_sources(a);
        a->cfg = old;
        bt_config_free(nc);
        char oerr[2048] = "";
        if (build_sources(a, oerr, sizeof(oerr)) < 0)
            BT_ERROR("agent", "cannot rebuild the old config either", "err=\"%s\"", oerr);
        bt_counter_inc(a->m_reload_fail);
        return rc;
    }
    bt_config_free(a->owned_cfg); /* the previous reload's config, if any */
    a->owned_cfg = nc;
    bt_counter_inc(a->m_reload_ok);
    BT_INFO("agent", "config reloaded", "jobs=%zu clients=%zu", a->n_jobs, a->n_clients);
    return 0;
}

/* ---- HTTP handlers ---------------------------------------------------------------------- */

static int h_reload(void *ctx, struct bt_buf *msg)
{
    struct bt_agent *a = ctx;
    char err[2048] = "";
    if (a->stopping) {
        bt_buf_adds(msg, "shutting down\n");
        return -1;
    }
    if (agent_reload(a, "http", err, sizeof(err)) < 0) {
        bt_buf_addf(msg, "config reload failed: %s\n", err);
        return -1;
    }
    bt_buf_adds(msg, "config reloaded\n");
    return 0;
}

static int h_ready(void *ctx, struct bt_buf *msg)
{
    struct bt_agent *a = ctx;
    if (!a->cfg->server.health_check_target)
        return 0;
    if (a->files && bt_files_active(a->files) > 0)
        return 0;
    if (a->fim)
        return 0;
    bt_buf_adds(msg, "Not ready: Unable to find any logs to tail. Please verify permissions, "
                     "volumes, scrape_config, etc.");
    return -1;
}

static int h_targets(void *ctx, struct bt_buf *out)
{
    struct bt_agent *a = ctx;
    /* watcher_next: the backend the watcher switches to when its background load ends. */
    int interim = a->files && bt_files_watcher_interim(a->files);
    int rc = bt_buf_addf(out, "{\"watcher\":\"%s\",%s\"fim\":\"%s\",\"files\":",
                         a->files ? bt_files_watcher(a->files) : "none",
                         interim ? "\"watcher_next\":\"bpf\"," : "",
                         a->fim ? bt_fim_backend(a->fim) : "off");
    if (rc == 0)
        rc = a->files ? bt_files_render_targets(a->files, out) : bt_buf_adds(out, "[]");
    if (rc == 0)
        rc = bt_buf_adds(out, "}\n");
    return rc;
}

static int h_config(void *ctx, struct bt_buf *out)
{
    struct bt_agent *a = ctx;
    return bt_config_dump(a->cfg, out);
}

/* ---- construction ----------------------------------------------------------------------- */

/* Connects to the URL's host:port with a short timeout: is anything listening? */
static bool url_reachable(const char *url)
{
    char host[256], port[16] = "80";
    const char *p = strstr(url, "://");
    bool https = strncmp(url, "https", 5) == 0;
    p = p ? p + 3 : url;
    const char *at = strchr(p, '@');
    const char *slash = strchr(p, '/');
    if (at && (!slash || at < slash))
        p = at + 1;
    size_t n = strcspn(p, ":/");
    if (n == 0 || n >= sizeof(host))
        return false;
    memcpy(host, p, n);
    host[n] = '\0';
    if (p[n] == ':')
        snprintf(port, sizeof(port), "%.*s", (int)strcspn(p + n + 1, "/"), p + n + 1);
    else if (https)
        snprintf(port, sizeof(port), "443");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return false;
    bool ok = false;
    for (struct addrinfo *ai = res; ai && !ok; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            ok = true;
        } else if (errno == EINPROGRESS) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int err = 0;
            socklen_t el = sizeof(err);
            if (poll(&pfd, 1, 1000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
                err == 0)
                ok = true;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return ok;
}

static int build_jobs(struct bt_agent *a, char *err, size_t errlen)
{
    a->jobs = calloc(a->cfg->n_scrapes ? a->cfg->n_scrapes : 1, sizeof(*a->jobs));
    if (!a->jobs)
        return -ENOMEM;
    for (size_t i = 0; i < a->cfg->n_scrapes; i++) {
        struct agent_job *j = &a->jobs[i];
        j->a = a;
        j->sc = &a->cfg->scrapes[i];
        j->pipeline = bt_pipeline_new(j->sc->pipeline_stages, j->sc->job_name, a->metrics,
                                      agent_sink, j, err, errlen);
        if (!j->pipeline)
            return -EINVAL;
        j->relabel = bt_relabel_new(j->sc->relabel_configs, err, errlen);
        if (!j->relabel)
            return -EINVAL;
        if (a->cli && a->cli->inspect)
            bt_pipeline_set_inspect(j->pipeline, stderr);
        a->n_jobs++;
    }
    return 0;
}

static int build_clients(struct bt_agent *a, char *err, size_t errlen)
{
    a->clients = calloc(a->cfg->n_clients ? a->cfg->n_clients : 1, sizeof(*a->clients));
    if (!a->clients)
        return -ENOMEM;
    for (size_t i = 0; i < a->cfg->n_clients; i++) {
        struct agent_client *c = &a->clients[i];
        c->a = a;
        c->cfg = &a->cfg->clients[i];
        c->bcfg = (struct bt_batcher_config){
            .batchsize = c->cfg->batchsize,
            .batchwait_ns = c->cfg->batchwait_ns,
            .tenant_id = c->cfg->tenant_id,
            .external = &c->cfg->external_labels,
            .max_streams = a->cfg->limits.max_streams,
        };
        c->client = bt_client_new(c->cfg, a->metrics);
        if (!c->client) {
            snprintf(err, errlen, "client %s: %s", c->cfg->url, strerror(errno));
            return -errno;
        }
        a->n_clients++;
        c->batcher = bt_batcher_new(&c->bcfg, batch_ready, batch_drop, c);
        if (!c->batcher)
            return -ENOMEM;
        int rc = bt_loop_add_fd(a->loop, bt_client_notify_fd(c->client), EPOLLIN, client_done, c);
        if (rc < 0) {
            snprintf(err, errlen, "event loop: %s", strerror(-rc));
            return rc;
        }
        char labels[160];
        snprintf(labels, sizeof(labels), "host=\"%s\",reason=\"too_old\",tenant=\"\"",
                 bt_client_host(c->client));
        c->m_too_old = bt_metrics_counter(a->metrics, "bpftail_dropped_entries_total",
                                          "Entries dropped, by reason.", labels);
    }
    return 0;
}

static void on_container(void *ctx, const char *id, const struct bt_labels *labels)
{
    struct agent_job *j = ctx;
    if (!labels)
        return;
    int rc = bt_files_add_target(j->a->files, j->sc->job_name, labels, j->sc->start_at,
                                 j->sc->ignore_older_ns, job_source_sink, j);
    if (rc < 0)
        BT_ERROR("agent", "cannot add container target", "id=%.12s", id);
}

/* A file_sd_configs target appeared or went away: it is a file target like a static one. */
static void on_file_sd(void *ctx, const struct bt_labels *labels, bool add)
{
    struct agent_job *j = ctx;
    struct bt_scrape_config *sc = j->sc;
    if (!add) {
        bt_files_remove_target(j->a->files, sc->job_name, labels, sc->start_at,
                               sc->ignore_older_ns);
        return;
    }
    if (bt_files_add_target(j->a->files, sc->job_name, labels, sc->start_at, sc->ignore_older_ns,
                            job_source_sink, j) < 0)
        BT_ERROR("agent", "cannot add file_sd target", "job=%s path=%s", sc->job_name,
                 bt_labels_get(labels, "__path__"));
}

static int64_t sd_cursor_get(void *p, const char *id)
{
    char k[96];
    const struct bt_position *pos = bt_positions_get(p, bt_docker_sd_cursor_key(k, sizeof(k), id));
    return pos ? bt_docker_sd_cursor_decode(pos->offset) : 0;
}

static void sd_cursor_set(void *p, const char *id, int64_t ns)
{
    char k[96];
    struct bt_position pos = {.offset = (uint64_t)ns};
    bt_positions_set(p, bt_docker_sd_cursor_key(k, sizeof(k), id), &pos);
}

/* bpftail_watcher_info: 1 for the backend in use, 0 for one used before (interim). */
static void watcher_metric(struct bt_agent *a)
{
    char lab[64];
    const char *name = bt_files_watcher(a->files);

    if (a->watcher_shown && strcmp(a->watcher_shown, name) != 0) {
        snprintf(lab, sizeof(lab), "backend=\"%s\"", a->watcher_shown);
        bt_gauge_set(bt_metrics_gauge(a->metrics, "bpftail_watcher_info",
                                      "The file watcher in use (bpf, fanotify, inotify or poll).",
                                      lab),
                     0);
    }
    a->watcher_shown = name;
    snprintf(lab, sizeof(lab), "backend=\"%s\"", name);
    bt_gauge_set(bt_metrics_gauge(a->metrics, "bpftail_watcher_info",
                                  "The file watcher in use (bpf, fanotify, inotify or poll).", lab),
                 1);
}

/* BPF programs are loaded and attached (or failed to), the HTTP port is bound: from here on
 * bpftail only reads logs and holds descriptors, so it keeps CAP_DAC_READ_SEARCH and nothing
 * else. */
static void drop_caps(void)
{
    uint64_t eff = 0, perm = 0;
    if (bt_caps_get(&eff, &perm) == 0 && (eff | perm) & ~bt_caps_keep_logs()) {
        int rc = bt_caps_drop_except(bt_caps_keep_logs());
        char hex[32];
        if (rc < 0)
            BT_WARN("agent", "could not drop capabilities", "err=%s", strerror(-rc));
        else if (bt_caps_get(&eff, &perm) == 0)
            BT_INFO("agent", "dropped capabilities not needed for reading logs", "effective=%s",
                    bt_caps_format(eff, hex, sizeof(hex)));
    }
}

/* The background BPF load finished; the file watcher and FIM have switched or stayed (their
 * callbacks ran first). */
static void on_bpf_loaded(void *ctx, int rc)
{
    struct bt_agent *a = ctx;

    (void)rc;
    if (a->files)
        watcher_metric(a);
    drop_caps();
}

static int build_targets(struct bt_agent *a, char *err, size_t errlen)
{
    struct bt_files_config fc = {
        .loop = a->loop,
        .metrics = a->metrics,
        .agent = &a->cfg->agent,
        .limits = &a->cfg->limits,
        .positions = &a->cfg->positions,
        .positions_readonly = a->dry_run,
        .sync_period_ns = a->cfg->target.sync_period_ns,
        .watcher = a->cfg->agent.watcher,
    };
    if (!a->files)
        a->files = bt_files_new(&fc, err, errlen); /* a reload keeps it, with its watcher */
    if (!a->files)
        return -EINVAL;
    for (size_t i = 0; i < a->n_jobs; i++) {
        struct bt_scrape_config *sc = a->jobs[i].sc;
        for (size_t s = 0; s < sc->n_statics; s++) {
            struct bt_static_config *st = &sc->statics[s];
            if (!bt_labels_get(&st->labels, "__path__"))
                continue;
            struct bt_labels rl;
            bt_labels_init(&rl);
            bt_labels_copy(&rl, &st->labels);
            if (bt_relabel_apply(a->jobs[i].relabel, &rl) != BT_RELABEL_KEEP) {
                bt_labels_free(&rl);
                continue;
            }
            int rc = bt_files_add_target(a->files, sc->job_name, &rl, sc->start_at,
                                         sc->ignore_older_ns, job_source_sink, &a->jobs[i]);
            bt_labels_free(&rl);
            if (rc < 0) {
                snprintf(err, errlen, "job %s: cannot add file target: %s", sc->job_name,
                         strerror(-rc));
                return rc;
            }
        }
    }
    for (size_t i = 0; i < a->n_jobs; i++) {
        struct agent_job *j = &a->jobs[i];
        const struct bt_node *sdl = j->sc->docker_sd_configs;
        if (sdl && sdl->type == BT_NODE_SEQ && sdl->n) {
            j->sds = calloc(sdl->n, sizeof(*j->sds));
            if (!j->sds)
                return -ENOMEM;
        }
        for (size_t k = 0; sdl && sdl->type == BT_NODE_SEQ && k < sdl->n; k++) {
            struct bt_docker_sd_env env = {.loop = a->loop,
                                           .metrics = a->metrics,
                                           .relabel = j->relabel,
                                           .job = j->sc->job_name,
                                           .sink = job_source_sink,
                                           .ctx = j,
                                           .max_line = a->cfg->limits.max_line_size,
                                           .cursor_get = sd_cursor_get,
                                           .cursor_set = sd_cursor_set,
                                           .pctx = bt_files_positions(a->files)};
            j->sds[j->n_sds] = bt_docker_sd_new(sdl->items[k], &env, err, errlen);
            if (!j->sds[j->n_sds])
                return -EINVAL;
            j->n_sds++;
        }
        const struct bt_node *fsl = j->sc->file_sd_configs;
        if (fsl && fsl->type == BT_NODE_SEQ && fsl->n) {
            j->fsds = calloc(fsl->n, sizeof(*j->fsds));
            if (!j->fsds)
                return -ENOMEM;
        }
        for (size_t k = 0; fsl && fsl->type == BT_NODE_SEQ && k < fsl->n; k++) {
            j->fsds[j->n_fsds] = bt_file_sd_new(fsl->items[k], a->check_only ? NULL : a->loop,
                                                j->relabel, on_file_sd, j, err, errlen);
            if (!j->fsds[j->n_fsds])
                return -EINVAL;
            j->n_fsds++;
        }
        if (j->sc->journal) {
            struct bt_journal_env env = {.loop = a->check_only ? NULL : a->loop,
                                         .relabel = j->relabel,
                                         .job = j->sc->job_name,
                                         .sink = job_source_sink,
                                         .ctx = j,
                                         .positions = bt_files_positions(a->files),
                                         .metrics = a->metrics};
            j->journal = bt_journal_new(j->sc->journal, &env, err, errlen);
            if (!j->journal)
                return -EINVAL;
        }
        if (!j->sc->docker)
            continue;
        j->disc =
            bt_docker_disc_new(j->sc->docker, a->loop, j->relabel, on_container, j, err, errlen);
        if (!j->disc)
            return -EINVAL;
    }
    BT_INFO("agent", "file watcher ready", "backend=%s", bt_files_watcher(a->files));
    watcher_metric(a);
    return 0;
}

static void init_metrics(struct bt_agent *a)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "version=\"%s\"", BT_VERSION);
    bt_gauge_set(bt_metrics_gauge(a->metrics, "bpftail_build_info", "bpftail version.", labels), 1);
    a->m_rate_drop = bt_metrics_counter(
        a->metrics, "bpftail_dropped_entries_total", "Entries dropped, by reason.",
        "host=\"\",reason=\"global_rate_limiter_drop\",tenant=\"\"");
    a->m_rate_drop_bytes = bt_metrics_counter(
        a->metrics, "bpftail_dropped_bytes_total", "Line bytes of dropped entries, by reason.",
        "host=\"\",reason=\"global_rate_limiter_drop\",tenant=\"\"");
    a->m_inflight = bt_metrics_gauge(a->metrics, "bpftail_inflight_bytes",
                                     "Line bytes held in batches and in flight.", NULL);
    bt_gauge_set(bt_metrics_gauge(a->metrics, "bpftail_memory_limit_bytes",
                                  "Ceiling for bytes held in batches and in flight.", NULL),
                 (double)a->memory_limit);
    a->m_paused = bt_metrics_gauge(a->metrics, "bpftail_sources_paused",
                                   "1 while file sources wait for pushes to drain.", NULL);
    a->m_pause_mem =
        bt_metrics_counter(a->metrics, "bpftail_backpressure_pauses_total",
                           "Times file sources paused, by reason.", "reason=\"memory_limit\"");
    a->m_pause_queue =
        bt_metrics_counter(a->metrics, "bpftail_backpressure_pauses_total",
                           "Times file sources paused, by reason.", "reason=\"push_queue\"");
    a->m_reload_ok = bt_metrics_counter(a->metrics, "bpftail_config_reload_success_total",
                                        "Config reloads applied.", NULL);
    a->m_reload_fail =
        bt_metrics_counter(a->metrics, "bpftail_config_reload_fail_total",
                           "Config reloads rejected (the old config kept running).", NULL);
}

static int setup_signals(struct bt_agent *a)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    /* Blocked before any thread starts, so the push threads inherit the mask. */
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return -errno;
    signal(SIGPIPE, SIG_IGN);
    a->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (a->sigfd < 0)
        return -errno;
    return bt_loop_add_fd(a->loop, a->sigfd, EPOLLIN, on_signal, a);
}

/* -check-syntax and reload checks: the journal and file_sd blocks are read by their modules,
 * which open nothing without a loop. */
static int validate_targets(struct bt_agent *a, char *err, size_t errlen)
{
    for (size_t i = 0; i < a->n_jobs; i++) {
        struct agent_job *j = &a->jobs[i];
        const struct bt_node *fsl = j->sc->file_sd_configs;
        for (size_t k = 0; fsl && fsl->type == BT_NODE_SEQ && k < fsl->n; k++) {
            struct bt_file_sd *sd =
                bt_file_sd_new(fsl->items[k], NULL, j->relabel, on_file_sd, j, err, errlen);
            if (!sd)
                return -EINVAL;
            bt_file_sd_free(sd);
        }
        if (j->sc->journal) {
            struct bt_journal_env env = {.job = j->sc->job_name, .sink = job_source_sink};
            struct bt_journal *jr = bt_journal_new(j->sc->journal, &env, err, errlen);
            if (!jr)
                return -EINVAL;
            bt_journal_free(jr);
        }
    }
    return 0;
}

struct bt_agent *bt_agent_new(struct bt_config *cfg, const struct bt_cli *cli, int check_only,
                              char *err, size_t errlen)
{
    struct bt_agent *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cfg = cfg;
    a->cli = cli;
    a->sigfd = -1;
    a->tick_at = INT64_MAX;
    a->dry_run = cli && cli->dry_run;
    a->check_only = check_only;
    a->memory_limit = cfg->agent.memory_limit ? cfg->agent.memory_limit : (64u << 20);
    a->tokens = cfg->limits.readline_burst;
    a->refill_at = bt_mono_ns();
    bt_buf_init(&a->dry, 64u << 20);
    a->metrics = bt_metrics_new();
    a->loop = bt_loop_new();
    if (!a->metrics || !a->loop) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    init_metrics(a);
    if (build_jobs(a, err, errlen) < 0)
        goto fail;
    /* Tailers only need wake-ups (writes to one file are coalesced in the kernel), so 1 MiB of
     * ring is plenty; FIM reports every access and gets more room for bursts. The ring is
     * mapped twice by the kernel, so this is 2x its size of resident memory. */
    bt_watch_bpf_set_ring_size(cfg->fim ? 4u << 20 : 1u << 20);
    /* Loading BPF takes 0.1-0.3 s, seconds while the kernel still detaches a previous run's
     * programs: load it in the background; files are tailed with the next watcher until then. */
    const char *wname = cfg->agent.watcher;
    if (!check_only && (!wname || !wname[0] || strcmp(wname, "auto") == 0))
        bt_watch_bpf_load_async(a->loop);
    if (cfg->fim) {
        /* Validates the policy; with check_only nothing is loaded into the kernel beyond that. */
        a->fim_job.a = a;
        a->fim = bt_fim_new(cfg->fim, check_only ? NULL : a->loop, a->metrics, agent_sink,
                            &a->fim_job, err, errlen);
        if (!a->fim && err[0])
            goto fail;
    }
    if (check_only && validate_targets(a, err, errlen) < 0)
        goto fail;
    if (check_only)
        return a;
    if (setup_signals(a) < 0) {
        snprintf(err, errlen, "signals: %s", strerror(errno));
        goto fail;
    }
    if (!a->dry_run && cli && !cli->config_file && cfg->n_clients == 1 &&
        !url_reachable(cfg->clients[0].url)) {
        BT_WARN("agent",
                "no Loki answers at the client URL; showing what would be shipped "
                "instead (as -dry-run)",
                "url=%s", cfg->clients[0].url);
        a->dry_run = true;
    }
    if (!a->dry_run && build_clients(a, err, errlen) < 0)
        goto fail;
    if (build_targets(a, err, errlen) < 0)
        goto fail;
    if (!cfg->server.disable && cfg->server.http_listen_port >= 0) {
        struct bt_httpd_handlers h = {
            .metrics = a->metrics,
            .ready = h_ready,
            .targets = h_targets,
            .config = h_config,
            .reload = cfg->server.enable_runtime_reload ? h_reload : NULL,
            .ctx = a,
        };
        a->httpd = bt_httpd_new(a->loop, cfg->server.http_listen_address,
                                cfg->server.http_listen_port, &h, err, errlen);
        if (!a->httpd)
            goto fail;
        BT_INFO("agent", "HTTP server listening", "port=%d", bt_httpd_port(a->httpd));
    }
    bt_loop_set_before_sleep(a->loop, before_sleep, a);
    /* Capabilities go once BPF is attached: now, or when the background load ends. */
    if (!bt_watch_bpf_loading() || bt_watch_bpf_when_loaded(on_bpf_loaded, a) < 0)
        drop_caps();
    return a;
fail:
    bt_agent_free(a);
    return NULL;
}

int bt_agent_run(struct bt_agent *a)
{
    BT_INFO("agent", "bpftail started", "version=%s clients=%zu jobs=%zu dry_run=%s", BT_VERSION,
            a->n_clients, a->n_jobs, a->dry_run ? "true" : "false");
    int rc = bt_loop_run(a->loop);
    if (rc < 0) {
        BT_ERROR("agent", "event loop failed", "err=%s", strerror(-rc));
        return 1;
    }
    size_t abandoned = 0;
    for (size_t i = 0; i < a->n_clients; i++) {
        abandoned += bt_client_stop(a->clients[i].client, a->stop_deadline);
        drain_done(&a->clients[i]);
    }
    if (a->files && bt_files_save_positions(a->files) < 0)
        BT_ERROR("agent", "could not save positions at shutdown", NULL);
    BT_INFO("agent", "stopped", "unsent_batches=%zu", abandoned);
    return 0;
}

void bt_agent_free(struct bt_agent *a)
{
    if (!a)
        return;
    bt_watch_bpf_load_abandon(); /* stopped before the background load ended */
    bt_httpd_free(a->httpd);
    bt_fim_free(a->fim);
    /* Clients first: their undecided batches hold segments of the files' ack owners. */
    for (size_t i = 0; i < a->n_clients; i++) {
        bt_client_stop(a->clients[i].client, bt_mono_ns());
        drain_done(&a->clients[i]);
        bt_loop_del_fd(a->loop, bt_client_notify_fd(a->clients[i].client));
        bt_client_free(a->clients[i].client);
        bt_batcher_free(a->clients[i].batcher);
    }
    free(a->clients);
    bt_files_free(a->files);
    for (size_t i = 0; i < a->n_jobs; i++) {
        bt_pipeline_free(a->jobs[i].pipeline);
        bt_docker_disc_free(a->jobs[i].disc);
        bt_journal_free(a->jobs[i].journal);
        for (size_t k = 0; k < a->jobs[i].n_fsds; k++)
            bt_file_sd_free(a->jobs[i].fsds[k]);
        free(a->jobs[i].fsds);
        for (size_t k = 0; k < a->jobs[i].n_sds; k++)
            bt_docker_sd_free(a->jobs[i].sds[k]);
        free(a->jobs[i].sds);
        bt_relabel_free(a->jobs[i].relabel);
    }
    free(a->jobs);
    if (a->sigfd >= 0)
        close(a->sigfd);
    bt_loop_free(a->loop);
    bt_metrics_free(a->metrics);
    bt_buf_free(&a->dry);
    bt_config_free(a->owned_cfg);
    free(a);
}
