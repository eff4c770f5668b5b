#include "agent/agent_int.h"

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
        size_t q = bt_client_backlog(a->clients[i].client);
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
        for (size_t i = 0; i < a->n_jobs; i++)
            for (size_t k = 0; k < AGENT_RECEIVER_KINDS; k++)
                bt_receiver_pause(a->jobs[i].recv[k]);
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
        for (size_t i = 0; i < a->n_jobs; i++)
            for (size_t k = 0; k < AGENT_RECEIVER_KINDS; k++)
                bt_receiver_resume(a->jobs[i].recv[k]);
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

void agent_sink(void *ctx, const struct bt_entry *e)
{
    struct agent_job *job = ctx;
    struct bt_agent *a = job->a;
    if (!rate_allow(a, e))
        return;
    if (a->dry_run) {
        print_entry(a, e);
        return;
    }
    int64_t now = bt_mono_coarse_ns(); /* per entry: batch ages need ms, not a clock read */
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
void agent_job_source_sink(void *ctx, const struct bt_entry *e)
{
    struct agent_job *job = ctx;
    bt_pipeline_process(job->pipeline, e);
}

/* ---- batches and clients -------------------------------------------------------------- */

void agent_batch_ready(void *ctx, struct bt_batch *b)
{
    struct agent_client *c = ctx;
    if (bt_client_submit(c->client, b) < 0) {
        /* Only after stop: the client hands the batch back as ABANDONED through take_done. */
        BT_DEBUG("agent", "batch submitted after stop", NULL);
    }
}

void agent_batch_drop(void *ctx, const struct bt_entry *e, const char *reason)
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

void agent_client_done(struct bt_loop *l, int fd, uint32_t events, void *arg)
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
void agent_before_sleep(struct bt_loop *l, void *arg)
{
    struct bt_agent *a = arg;
    bt_loop_timer_at(l, &a->tick_timer, &a->tick_at, next_deadline(a), on_tick, a);
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
    /* Receivers go on taking what senders send into their queues (durable), but stop feeding
     * the pipeline, so the pushes in flight can drain before the deadline. */
    for (size_t i = 0; i < a->n_jobs; i++)
        for (size_t k = 0; k < AGENT_RECEIVER_KINDS; k++)
            bt_receiver_pause(a->jobs[i].recv[k]);
    /* Held partial lines and multiline blocks are not flushed: their bytes are not committed,
     * so they are read again after a restart instead of being shipped cut in two. */
    for (size_t i = 0; i < a->n_clients; i++)
        bt_batcher_flush(a->clients[i].batcher);
    a->stop_timer = bt_loop_add_timer(a->loop, 0, SHUTDOWN_POLL_NS, shutdown_poll, a);
}

static int agent_reload(struct bt_agent *a, const char *why, char *err, size_t errlen);

void agent_on_signal(struct bt_loop *l, int fd, uint32_t events, void *arg)
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
        for (size_t k = 0; k < AGENT_RECEIVER_KINDS; k++) /* first: they feed the pipeline */
            bt_receiver_free(a->jobs[i].recv[k]);
        bt_pipeline_free(a->jobs[i].pipeline);
        bt_docker_disc_free(a->jobs[i].disc);
        bt_journal_free(a->jobs[i].journal);
        for (size_t k = 0; k < a->jobs[i].n_fsds; k++)
            bt_file_sd_free(a->jobs[i].fsds[k]);
        free(a->jobs[i].fsds);
        for (size_t k = 0; k < a->jobs[i].n_sds; k++)
            bt_docker_sd_free(a->jobs[i].sds[k]);
        free(a->jobs[i].sds);
        for (size_t k = 0; k < a->jobs[i].n_ksds; k++)
            bt_k8s_sd_free(a->jobs[i].ksds[k]);
        free(a->jobs[i].ksds);
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
    int rc = agent_build_jobs(a, err, errlen);
    if (rc == 0 && !a->dry_run)
        rc = agent_build_clients(a, err, errlen);
    if (rc == 0)
        rc = agent_build_targets(a, err, errlen);
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

int agent_h_reload(void *ctx, struct bt_buf *msg)
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

int agent_h_ready(void *ctx, struct bt_buf *msg)
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

/* A comma before the next element of a JSON list that started at start. */
static int comma_after(struct bt_buf *out, size_t start)
{
    return out->len > start ? bt_buf_adds(out, ",") : 0;
}

int agent_h_targets(void *ctx, struct bt_buf *out)
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
    /* Receivers: their listening port, open connections (syslog TCP) and durable queue. */
    rc = rc ? rc : bt_buf_adds(out, ",\"receivers\":[");
    size_t start = out->len;
    for (size_t i = 0; rc == 0 && i < a->n_jobs; i++) {
        for (size_t k = 0; rc == 0 && k < AGENT_RECEIVER_KINDS; k++)
            if (a->jobs[i].recv[k] && !(rc = comma_after(out, start)))
                rc = bt_receiver_render(a->jobs[i].recv[k], out);
    }
    if (rc == 0)
        rc = bt_buf_adds(out, "]}\n");
    return rc;
}

int agent_h_config(void *ctx, struct bt_buf *out)
{
    struct bt_agent *a = ctx;
    return bt_config_dump(a->cfg, out);
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
        for (size_t k = 0; k < AGENT_RECEIVER_KINDS; k++) /* first: they feed the pipeline */
            bt_receiver_free(a->jobs[i].recv[k]);
        bt_pipeline_free(a->jobs[i].pipeline);
        bt_docker_disc_free(a->jobs[i].disc);
        bt_journal_free(a->jobs[i].journal);
        for (size_t k = 0; k < a->jobs[i].n_fsds; k++)
            bt_file_sd_free(a->jobs[i].fsds[k]);
        free(a->jobs[i].fsds);
        for (size_t k = 0; k < a->jobs[i].n_sds; k++)
            bt_docker_sd_free(a->jobs[i].sds[k]);
        free(a->jobs[i].sds);
        for (size_t k = 0; k < a->jobs[i].n_ksds; k++)
            bt_k8s_sd_free(a->jobs[i].ksds[k]);
        free(a->jobs[i].ksds);
        bt_relabel_free(a->jobs[i].relabel);
    }
    free(a->jobs);
    bt_resolver_free(a->resolver); /* after the syslog jobs, which wait on it */
    if (a->sigfd >= 0)
        close(a->sigfd);
    bt_loop_free(a->loop);
    bt_metrics_free(a->metrics);
    bt_buf_free(&a->dry);
    bt_config_free(a->owned_cfg);
    free(a);
}
