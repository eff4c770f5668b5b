#include "agent/agent_int.h"
#include "util/hmap.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

int agent_build_jobs(struct bt_agent *a, char *err, size_t errlen)
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

int agent_build_clients(struct bt_agent *a, char *err, size_t errlen)
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
            .lanes = (size_t)c->cfg->max_in_flight,
        };
        c->client = bt_client_new(c->cfg, a->metrics);
        if (!c->client) {
            snprintf(err, errlen, "client %s: %s", c->cfg->url, strerror(errno));
            return -errno;
        }
        a->n_clients++;
        c->batcher = bt_batcher_new(&c->bcfg, agent_batch_ready, agent_batch_drop, c);
        if (!c->batcher)
            return -ENOMEM;
        int rc =
            bt_loop_add_fd(a->loop, bt_client_notify_fd(c->client), EPOLLIN, agent_client_done, c);
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
                                 j->sc->ignore_older_ns, agent_job_source_sink, j);
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
                            agent_job_source_sink, j) < 0)
        BT_ERROR("agent", "cannot add file_sd target", "job=%s path=%s", sc->job_name,
                 bt_labels_get(labels, "__path__"));
}

/* A pod target appeared or went away. A deleted pod's files are still read to their end
 * (kubelet keeps them a while, and the container may have written its last lines just
 * before): the target is retired, not removed. */
static void on_k8s_sd(void *ctx, const struct bt_labels *labels, bool add)
{
    struct agent_job *j = ctx;
    struct bt_scrape_config *sc = j->sc;
    if (!add) {
        bt_files_retire_target(j->a->files, sc->job_name, labels, sc->start_at,
                               sc->ignore_older_ns);
        return;
    }
    if (bt_files_add_target(j->a->files, sc->job_name, labels, sc->start_at, sc->ignore_older_ns,
                            agent_job_source_sink, j) < 0)
        BT_ERROR("agent", "cannot add kubernetes_sd target", "job=%s path=%s", sc->job_name,
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

/* <spool_dir>/<kind>-<job>: the durable queue of one receiver. spool_dir defaults to a
 * "bpftail-spool" directory beside the positions file. A job name that is not a plain file
 * name (characters other than letters, digits, '-', '_' and '.', a leading '.', longer than 100
 * bytes) is written with '_' for those characters, cut, and followed by a hash of the real
 * name, so two jobs never share a directory. */
static void queue_dir(const struct bt_agent *a, const char *kind, const char *job, char *out,
                      size_t outlen)
{
    const char *root = a->cfg->agent.spool_dir;
    char base[PATH_MAX], name[128];
    size_t n = 0;
    bool changed = false;
    if (!root || !root[0]) {
        const char *pos = a->cfg->positions.filename;
        const char *slash = strrchr(pos, '/');
        if (slash)
            snprintf(base, sizeof(base), "%.*s/bpftail-spool", (int)(slash - pos), pos);
        else
            snprintf(base, sizeof(base), "bpftail-spool");
        root = base;
    }
    for (const char *p = job; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || (c == '.' && p != job);
        if (n == 100) {
            changed = true;
            break;
        }
        name[n++] = ok ? c : '_';
        changed |= !ok;
    }
    name[n] = '\0';
    if (changed)
        snprintf(out, outlen, "%s/%s-%s-%016llx", root, kind, name,
                 (unsigned long long)bt_hash64(job, strlen(job)));
    else
        snprintf(out, outlen, "%s/%s-%s", root, kind, name);
}

/* The receivers, in the order of agent_job.recv. */
static const struct bt_receiver_ops *const receiver_kinds[AGENT_RECEIVER_KINDS] = {
    &bt_syslog_receiver, &bt_gelf_receiver, &bt_push_receiver};

/* The scrape config's block for receiver kind k, or NULL. */
static const struct bt_node *receiver_block(const struct bt_scrape_config *sc, size_t k)
{
    const struct bt_node *blocks[AGENT_RECEIVER_KINDS] = {sc->syslog, sc->gelf, sc->loki_push_api};
    return blocks[k];
}

/* Builds the job's receivers into j->recv; check_only: reads their blocks only (no queue, no
 * socket) and frees them. */
static int build_receivers(struct bt_agent *a, struct agent_job *j, bool check_only, char *err,
                           size_t errlen)
{
    const char *job = j->sc->job_name ? j->sc->job_name : "";
    for (size_t k = 0; k < AGENT_RECEIVER_KINDS; k++) {
        const struct bt_node *block = receiver_block(j->sc, k);
        if (!block)
            continue;
        const struct bt_receiver_ops *ops = receiver_kinds[k];
        char dir[PATH_MAX + 64];
        struct bt_receiver_env env = {.job = j->sc->job_name, .sink = agent_job_source_sink};
        if (!check_only) {
            queue_dir(a, ops->kind, job, dir, sizeof(dir));
            /* One resolver (one worker thread, one cache) for every syslog job; it outlives
             * reloads. */
            if (ops == &bt_syslog_receiver && !a->resolver &&
                !(a->resolver = bt_resolver_new(a->loop, a->metrics, NULL)))
                BT_WARN("syslog", "no reverse DNS: __syslog_connection_hostname stays empty",
                        "err=%s", strerror(errno));
            env = (struct bt_receiver_env){.loop = a->loop,
                                           .metrics = a->metrics,
                                           .relabel = j->relabel,
                                           .resolver = a->resolver,
                                           .job = j->sc->job_name,
                                           .sink = agent_job_source_sink,
                                           .ctx = j,
                                           .queue_dir = dir,
                                           .queue_bytes = a->cfg->agent.spool_max_bytes};
        }
        struct bt_receiver *r = ops->open(block, &env, err, errlen);
        if (!r)
            return -EINVAL;
        if (check_only)
            bt_receiver_free(r);
        else
            j->recv[k] = r;
    }
    return 0;
}

/* File events are handled at most every tenth of the shortest batchwait (up to 100 ms): the
 * lines of a file written in small pieces wait a little in the file instead of waking the loop
 * per write, and the batch they join is sent no later for it. */
static int64_t coalesce_ns(const struct bt_config *cfg)
{
    int64_t w = 100 * BT_NS_PER_MS;
    for (size_t i = 0; i < cfg->n_clients; i++)
        if (cfg->clients[i].batchwait_ns / 10 < w)
            w = cfg->clients[i].batchwait_ns / 10;
    return w > 0 ? w : 0;
}

int agent_build_targets(struct bt_agent *a, char *err, size_t errlen)
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
        .coalesce_ns = coalesce_ns(a->cfg),
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
                                         sc->ignore_older_ns, agent_job_source_sink, &a->jobs[i]);
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
        int rc_;
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
                                           .sink = agent_job_source_sink,
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
        const struct bt_node *ksl = j->sc->kubernetes_sd_configs;
        if (ksl && ksl->type == BT_NODE_SEQ && ksl->n) {
            j->ksds = calloc(ksl->n, sizeof(*j->ksds));
            if (!j->ksds)
                return -ENOMEM;
        }
        for (size_t k = 0; ksl && ksl->type == BT_NODE_SEQ && k < ksl->n; k++) {
            j->ksds[j->n_ksds] = bt_k8s_sd_new(ksl->items[k], a->loop, a->metrics, j->relabel,
                                               j->sc->job_name, on_k8s_sd, j, err, errlen);
            if (!j->ksds[j->n_ksds])
                return -EINVAL;
            j->n_ksds++;
        }
        /* A reload: the new discovery lists its pods only later. Until then the job's targets
         * are kept as retired ones: listed again, they go on; gone meanwhile, they are read to
         * their end first. */
        if (j->n_ksds)
            bt_files_retire_stale_targets(a->files, j->sc->job_name, agent_job_source_sink, j);
        if (j->sc->journal) {
            struct bt_journal_env env = {.loop = a->check_only ? NULL : a->loop,
                                         .relabel = j->relabel,
                                         .job = j->sc->job_name,
                                         .sink = agent_job_source_sink,
                                         .ctx = j,
                                         .positions = bt_files_positions(a->files),
                                         .metrics = a->metrics};
            j->journal = bt_journal_new(j->sc->journal, &env, err, errlen);
            if (!j->journal)
                return -EINVAL;
        }
        if ((rc_ = build_receivers(a, j, false, err, errlen)) < 0)
            return rc_;
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
    /* Before any thread starts: the push threads inherit the mask. */
    int fd = bt_loop_add_signals(a->loop, agent_on_signal, a);
    if (fd < 0)
        return fd;
    a->sigfd = fd;
    return 0;
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
        const struct bt_node *ksl = j->sc->kubernetes_sd_configs;
        for (size_t k = 0; ksl && ksl->type == BT_NODE_SEQ && k < ksl->n; k++) {
            struct bt_k8s_sd *sd = bt_k8s_sd_new(ksl->items[k], NULL, NULL, j->relabel,
                                                 j->sc->job_name, on_k8s_sd, j, err, errlen);
            if (!sd)
                return -EINVAL;
            bt_k8s_sd_free(sd);
        }
        if (j->sc->journal) {
            struct bt_journal_env env = {.job = j->sc->job_name, .sink = agent_job_source_sink};
            struct bt_journal *jr = bt_journal_new(j->sc->journal, &env, err, errlen);
            if (!jr)
                return -EINVAL;
            bt_journal_free(jr);
        }
        if (build_receivers(a, j, true, err, errlen) < 0)
            return -EINVAL;
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
    if (agent_build_jobs(a, err, errlen) < 0)
        goto fail;
    /* Tailers mostly need wake-ups (writes to one file are coalesced in the kernel until the
     * loop reads its record), but a burst past the ring is an overflow: every target is
     * rescanned, and a file that a rotation moved out of the glob meanwhile is never seen
     * (its create event, which sf_follow_created needs, was in the burst). Container starts
     * write many files into watched directories at once, so 1 MiB (about 1,000 records of
     * 1 KiB): 256 KiB lost a json-file generation under a full CI run's load. The ring's data
     * is mapped twice, so it counts up to twice its size in RSS. FIM reports every access and
     * gets more room. */
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
    int src = setup_signals(a);
    if (src < 0) {
        snprintf(err, errlen, "signals: %s", strerror(-src));
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
    if (!a->dry_run && agent_build_clients(a, err, errlen) < 0)
        goto fail;
    if (agent_build_targets(a, err, errlen) < 0)
        goto fail;
    if (!cfg->server.disable && cfg->server.http_listen_port >= 0) {
        struct bt_httpd_handlers h = {
            .metrics = a->metrics,
            .ready = agent_h_ready,
            .targets = agent_h_targets,
            .config = agent_h_config,
            .reload = cfg->server.enable_runtime_reload ? agent_h_reload : NULL,
            .ctx = a,
            .path_prefix = cfg->server.http_path_prefix,
            .tls_cert_file = cfg->server.http_tls_cert_file,
            .tls_key_file = cfg->server.http_tls_key_file,
        };
        a->httpd = bt_httpd_new(a->loop, cfg->server.http_listen_address,
                                cfg->server.http_listen_port, &h, err, errlen);
        if (!a->httpd)
            goto fail;
        BT_INFO("agent", "HTTP server listening", "port=%d tls=%s path_prefix=%s",
                bt_httpd_port(a->httpd), cfg->server.http_tls_cert_file ? "on" : "off",
                cfg->server.http_path_prefix && cfg->server.http_path_prefix[0]
                    ? cfg->server.http_path_prefix
                    : "/");
    }
    bt_loop_set_before_sleep(a->loop, agent_before_sleep, a);
    /* Capabilities go once BPF is attached: now, or when the background load ends. */
    if (!bt_watch_bpf_loading() || bt_watch_bpf_when_loaded(on_bpf_loaded, a) < 0)
        drop_caps();
    return a;
fail:
    bt_agent_free(a);
    return NULL;
}
