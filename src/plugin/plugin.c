/* The Docker logging plugin's process: settings, Docker's protocol, shared clients, state,
 * shutdown. See plugin.h. */
#include "plugin/plugin.h"
#include "plugin/plugin_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/httpd.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/spool.h"
#include "push/client.h"
#include "util/log.h"
#include "util/timeutil.h"

#define COMP "plugin"
#define DOCKER_CTYPE "application/vnd.docker.plugins.v1.1+json"
#define MAX_REQUEST (1u << 20) /* StartLogging carries the container's env: tens of KB */
#define SHUTDOWN_POLL_NS (20 * BT_NS_PER_MS)
#define SYNC_PERIOD_NS (5 * BT_NS_PER_SEC)

struct settings {
    const char *socket;
    const char *state_dir;
    uint64_t spool_max;
    const char *metrics_addr;
};

/* ---- shared push clients ---------------------------------------------------------------- */

static void batch_ready(void *ctx, struct bt_batch *b)
{
    struct pl_client *c = ctx;
    bt_client_submit(c->client, b); /* after stop it comes back ABANDONED */
}

static void batch_drop(void *ctx, const struct bt_entry *e, const char *reason)
{
    struct pl_client *c = ctx;
    char labels[160];
    snprintf(labels, sizeof(labels), "host=\"%s\",reason=\"%s\",tenant=\"\"",
             bt_client_host(c->client), reason);
    bt_counter_inc(bt_metrics_counter(c->p->metrics, "bpftail_dropped_entries_total",
                                      "Entries dropped, by reason.", labels));
}

static void drain_done(struct pl_client *c)
{
    struct bt_batch *b;
    /* An abandoned batch's references are abandoned by bt_batch_release: no commit passes
     * them (the spools keep those lines for the next start) and the ack owners, closed at exit
     * before this runs, free themselves. */
    while ((b = bt_client_take_done(c->client)))
        bt_batch_release(b);
}

static void on_client_done(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct pl_client *c = arg;
    drain_done(c);
    pl_request_more(c->p);
}

bool pl_client_full(struct pl_client *c)
{
    size_t q = bt_client_backlog(c->client);
    size_t n = bt_batcher_bytes(c->batcher) + bt_client_pending_bytes(c->client);
    if (!c->full && (q >= PL_MAX_QUEUED || n >= PL_MAX_INFLIGHT))
        c->full = true;
    else if (c->full && q < PL_MAX_QUEUED && n <= PL_MAX_INFLIGHT / 2)
        c->full = false;
    return c->full;
}

static void client_free(struct pl_client *c)
{
    if (!c)
        return;
    if (c->client) {
        bt_client_stop(c->client, bt_mono_ns());
        drain_done(c);
        bt_loop_del_fd(c->p->loop, bt_client_notify_fd(c->client));
        bt_client_free(c->client);
    }
    bt_batcher_free(c->batcher);
    bt_client_config_free(&c->cfg);
    free(c->key);
    free(c);
}

static int copy_str(char **dst, const char *s)
{
    *dst = s ? strdup(s) : NULL;
    return s && !*dst ? -ENOMEM : 0;
}

/* The client config outlives the container that brought it: copied. */
static int copy_client_config(struct bt_client_config *d, const struct bt_client_config *s)
{
    *d = *s;
    bt_labels_init(&d->external_labels);
    d->headers = NULL;
    d->n_headers = 0;
    int rc = copy_str(&d->url, s->url) | copy_str(&d->name, s->name) |
             copy_str(&d->tenant_id, s->tenant_id) |
             copy_str(&d->basic_username, s->basic_username) |
             copy_str(&d->basic_password, s->basic_password) |
             copy_str(&d->basic_password_file, s->basic_password_file) |
             copy_str(&d->bearer_token, s->bearer_token) |
             copy_str(&d->bearer_token_file, s->bearer_token_file) |
             copy_str(&d->proxy_url, s->proxy_url) | copy_str(&d->tls.ca_file, s->tls.ca_file) |
             copy_str(&d->tls.cert_file, s->tls.cert_file) |
             copy_str(&d->tls.key_file, s->tls.key_file) |
             copy_str(&d->tls.server_name, s->tls.server_name);
    return rc ? -ENOMEM : 0;
}

struct pl_client *pl_client_get(struct bt_plugin *p, const struct bt_client_config *cfg, char *err,
                                size_t errlen)
{
    char *key = bt_plugin_client_key(cfg);
    if (!key) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (struct pl_client *c = p->clients; c; c = c->next) {
        if (strcmp(c->key, key) == 0) {
            free(key);
            c->refs++;
            return c;
        }
    }
    struct pl_client *c = calloc(1, sizeof(*c));
    if (!c) {
        free(key);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->p = p;
    c->key = key;
    if (copy_client_config(&c->cfg, cfg) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    c->bcfg = (struct bt_batcher_config){.batchsize = c->cfg.batchsize,
                                         .batchwait_ns = c->cfg.batchwait_ns,
                                         .tenant_id = c->cfg.tenant_id,
                                         .lanes = (size_t)c->cfg.max_in_flight};
    c->client = bt_client_new(&c->cfg, p->metrics);
    if (!c->client) {
        snprintf(err, errlen, "push client for %s: %s", c->cfg.url, strerror(errno));
        goto fail;
    }
    c->batcher = bt_batcher_new(&c->bcfg, batch_ready, batch_drop, c);
    int rc = c->batcher ? bt_loop_add_fd(p->loop, bt_client_notify_fd(c->client), EPOLLIN,
                                         on_client_done, c)
                        : -ENOMEM;
    if (rc < 0) {
        snprintf(err, errlen, "push client: %s", strerror(-rc));
        goto fail;
    }
    c->refs = 1;
    c->next = p->clients;
    p->clients = c;
    BT_INFO(COMP, "push client started", "url=%s tenant=%s", bt_client_name(c->client),
            c->cfg.tenant_id ? c->cfg.tenant_id : "");
    return c;
fail:
    if (c->client && c->batcher == NULL) {
        bt_client_free(c->client);
        c->client = NULL;
    }
    client_free(c);
    return NULL;
}

/* The last container of a client is gone: everything it pushed was acknowledged. */
void pl_client_put(struct pl_client *c)
{
    if (--c->refs > 0)
        return;
    struct bt_plugin *p = c->p;
    for (struct pl_client **pp = &p->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    bt_batcher_flush(c->batcher);
    client_free(c);
}

/* ---- containers ------------------------------------------------------------------------- */

void pl_request_more(struct bt_plugin *p)
{
    p->more = true;
}

static uint64_t fnv64(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

char *pl_state_path(const struct bt_plugin *p, const char *file)
{
    char *out = NULL;
    if (asprintf(&out, "%s/c-%016llx", p->state_dir, (unsigned long long)fnv64(file)) < 0)
        return NULL;
    return out;
}

static struct pl_container *find(struct bt_plugin *p, const char *file)
{
    for (struct pl_container *c = p->containers; c; c = c->next)
        if (strcmp(c->file, file) == 0)
            return c;
    return NULL;
}

static void link_container(struct bt_plugin *p, struct pl_container *c)
{
    c->next = p->containers;
    p->containers = c;
    bt_gauge_add(p->m_containers, 1);
}

/* Writes the request next to the spool: temp file, rename. No fsync: the page cache survives
 * a plugin crash, and StartLogging must not wait for the disk. */
static int save_request(const char *dir, const char *body, size_t len)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof(tmp), "%s/request.json.tmp", dir);
    snprintf(path, sizeof(path), "%s/request.json", dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, body + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return -e;
        }
        off += (size_t)n;
    }
    close(fd);
    return rename(tmp, path) < 0 ? -errno : 0;
}

static char *read_request(const char *dir, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/request.json", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct bt_buf b;
    bt_buf_init(&b, MAX_REQUEST);
    char chunk[16384];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        if (bt_buf_add(&b, chunk, (size_t)n) < 0)
            break;
    close(fd);
    if (n != 0 || b.len == 0) {
        bt_buf_free(&b);
        return NULL;
    }
    return bt_buf_take(&b, len);
}

static int start_logging(struct bt_plugin *p, const char *body, size_t len, char *err,
                         size_t errlen)
{
    struct bt_plugin_info in;
    int rc = bt_plugin_info_parse(body, len, &in, err, errlen);
    char *dir = NULL;
    if (rc < 0)
        goto out;
    rc = -EINVAL;
    if (p->stopping) {
        snprintf(err, errlen, "bpftail is shutting down");
        goto out;
    }
    struct pl_container *old = find(p, in.file);
    if (old) {
        snprintf(err, errlen, "already logging to %s (container %.12s)", in.file, old->id);
        goto out;
    }
    dir = pl_state_path(p, in.file);
    if (!dir || (mkdir(dir, 0700) < 0 && errno != EEXIST)) {
        snprintf(err, errlen, "cannot create %s: %s", dir ? dir : "state directory",
                 strerror(errno));
        goto out;
    }
    rc = save_request(dir, body, len);
    if (rc < 0) {
        snprintf(err, errlen, "cannot save the request in %s: %s", dir, strerror(-rc));
        goto out;
    }
    struct pl_container *c = pl_container_start(p, &in, dir, false, err, errlen);
    if (!c) {
        rc = -EINVAL;
        char path[4096];
        snprintf(path, sizeof(path), "%s/request.json", dir);
        unlink(path);
        rmdir(dir);
        goto out;
    }
    link_container(p, c);
    rc = 0;
out:
    if (rc < 0)
        BT_WARN(COMP, "StartLogging refused", "container=%.12s err=\"%s\"",
                in.container_id ? in.container_id : "", err);
    free(dir);
    bt_plugin_info_free(&in);
    return rc;
}

static void stop_logging(struct bt_plugin *p, const char *body, size_t len)
{
    char err[512];
    char *file = bt_plugin_parse_file(body, len, err, sizeof(err));
    if (!file) {
        BT_WARN(COMP, "StopLogging: bad request", "err=\"%s\"", err);
        return;
    }
    struct pl_container *c = find(p, file);
    if (c) {
        BT_INFO(COMP, "StopLogging: reading the FIFO to its end", "container=%.12s", c->id);
        pl_container_stop(c);
    }
    free(file);
}

/* Restores every container directory of the state dir (see plugin.h). */
static void restore(struct bt_plugin *p)
{
    DIR *d = opendir(p->state_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "c-", 2) != 0)
            continue;
        char *dir = NULL;
        if (asprintf(&dir, "%s/%s", p->state_dir, de->d_name) < 0)
            break;
        size_t len = 0;
        char *body = read_request(dir, &len);
        char err[1024] = "";
        struct bt_plugin_info in;
        struct pl_container *c = NULL;
        if (body && bt_plugin_info_parse(body, len, &in, err, sizeof(err)) == 0) {
            if (!find(p, in.file))
                c = pl_container_start(p, &in, dir, true, err, sizeof(err));
            bt_plugin_info_free(&in);
        } else if (!body) {
            snprintf(err, sizeof(err), "no readable request.json");
        }
        if (c)
            link_container(p, c);
        else
            BT_ERROR(COMP, "cannot take up a container's state again; it stays on disk",
                     "dir=%s err=\"%s\"", dir, err);
        free(body);
        free(dir);
    }
    closedir(d);
}

/* ---- Docker's protocol ------------------------------------------------------------------ */

static int add_err(struct bt_buf *out, const char *msg)
{
    int rc = bt_buf_adds(out, "{\"Err\":\"");
    for (const unsigned char *s = (const unsigned char *)msg; *s && rc == 0; s++) {
        if (*s == '"' || *s == '\\')
            rc = bt_buf_addf(out, "\\%c", *s);
        else if (*s < 0x20)
            rc = bt_buf_addf(out, "\\u%04x", *s);
        else
            rc = bt_buf_add(out, s, 1);
    }
    return rc ? rc : bt_buf_adds(out, "\"}\n");
}

static unsigned on_post(void *ctx, const char *url, const char *body, size_t len,
                        struct bt_buf *out, const char **ctype)
{
    struct bt_plugin *p = ctx;
    *ctype = DOCKER_CTYPE;
    if (strcmp(url, "/Plugin.Activate") == 0) {
        bt_buf_adds(out, "{\"Implements\":[\"LogDriver\"]}\n");
    } else if (strcmp(url, "/LogDriver.Capabilities") == 0) {
        bt_buf_adds(out, "{\"Cap\":{\"ReadLogs\":false},\"Err\":\"\"}\n");
    } else if (strcmp(url, "/LogDriver.StartLogging") == 0) {
        char err[2048] = "";
        start_logging(p, body, len, err, sizeof(err));
        add_err(out, err);
    } else if (strcmp(url, "/LogDriver.StopLogging") == 0) {
        stop_logging(p, body, len);
        add_err(out, "");
    } else if (strcmp(url, "/LogDriver.ReadLogs") == 0) {
        add_err(out, "bpftail does not read logs back: docker logs uses Docker's local cache "
                     "(keep cache-disabled=false)");
    } else {
        add_err(out, "unknown endpoint");
        return 404;
    }
    return 200;
}

static int h_ready(void *ctx, struct bt_buf *msg)
{
    struct bt_plugin *p = ctx;
    if (p->stopping) {
        bt_buf_adds(msg, "shutting down");
        return -1;
    }
    return 0;
}

/* ---- the loop ---------------------------------------------------------------------------- */

static void on_more(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_plugin *p = arg;
    p->more_timer = 0;
    p->more = true;
}

static void on_tick(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_plugin *p = arg;
    p->tick_timer = 0;
    p->tick_at = INT64_MAX;
    int64_t now = bt_mono_ns();
    if (!p->stopping)
        for (struct pl_container *c = p->containers; c; c = c->next)
            pl_container_tick(c, now);
    for (struct pl_client *c = p->clients; c; c = c->next)
        bt_batcher_tick(c->batcher, now);
    p->more = true;
}

/* The spool saves its commit at most once a second while acknowledgements come; this catches
 * the last one when they stop, so a crash re-sends at most a few seconds of acknowledged
 * lines. Not more often: each save is two fsyncs on the loop thread. */
static void on_sync(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_plugin *p = arg;
    for (struct pl_container *c = p->containers; c; c = c->next)
        if (c->spool && bt_spool_sync(c->spool) < 0)
            BT_WARN(COMP, "cannot save a spool's commit", "container=%.12s", c->id);
}

/* Frees containers with nothing left to do (FIFO at EOF, spool acknowledged). */
static void reap(struct bt_plugin *p)
{
    for (struct pl_container **pp = &p->containers; *pp;) {
        struct pl_container *c = *pp;
        if (!pl_container_done(c)) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        bt_gauge_add(p->m_containers, -1);
        BT_INFO(COMP, "container done: every line shipped", "container=%.12s name=%s", c->id,
                c->name);
        pl_container_free(c, true);
    }
}

static void before_sleep(struct bt_loop *l, void *arg)
{
    struct bt_plugin *p = arg;
    if (p->more) {
        p->more = false;
        bool again = false;
        for (struct pl_container *c = p->containers; c; c = c->next)
            again |= pl_container_pump(c);
        if (!p->stopping)
            reap(p);
        if (again && !p->more_timer)
            p->more_timer = bt_loop_add_timer(l, 0, 0, on_more, p);
    }
    int64_t d = INT64_MAX;
    for (struct pl_client *c = p->clients; c; c = c->next) {
        int64_t x = bt_batcher_deadline(c->batcher);
        d = x < d ? x : d;
    }
    for (struct pl_container *c = p->containers; c; c = c->next) {
        int64_t x = pl_container_deadline(c);
        d = x < d ? x : d;
    }
    bt_loop_timer_at(l, &p->tick_timer, &p->tick_at, d, on_tick, p);
}

static size_t pending_batches(struct bt_plugin *p)
{
    size_t n = 0;
    for (struct pl_client *c = p->clients; c; c = c->next)
        n += bt_client_pending(c->client) + (bt_batcher_bytes(c->batcher) > 0);
    return n;
}

static bool unpumped(struct bt_plugin *p)
{
    for (struct pl_container *c = p->containers; c; c = c->next)
        if (c->spool && bt_spool_read_offset(c->spool) < bt_spool_end(c->spool))
            return true;
    return false;
}

/* While stopping: keep pushing until everything spooled is out or the deadline passes. */
static void shutdown_poll(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_plugin *p = arg;
    for (struct pl_client *c = p->clients; c; c = c->next) {
        drain_done(c);
        bt_batcher_flush(c->batcher);
    }
    p->more = true;
    if ((!unpumped(p) && pending_batches(p) == 0) || bt_mono_ns() >= p->stop_deadline) {
        bt_loop_del_timer(l, id);
        bt_loop_stop(l);
    }
}

static void begin_shutdown(struct bt_plugin *p, const char *why)
{
    if (p->stopping) {
        p->stop_deadline = bt_mono_ns();
        return;
    }
    p->stopping = true;
    p->stop_deadline = bt_mono_ns() + PL_SHUTDOWN_NS;
    BT_INFO(COMP, "shutting down: FIFOs closed, pushing what the spools hold for 5s", "signal=%s",
            why);
    for (struct pl_container *c = p->containers; c; c = c->next)
        pl_container_quiesce(c);
    bt_loop_add_timer(p->loop, 0, SHUTDOWN_POLL_NS, shutdown_poll, p);
}

static void on_signal(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        if (si.ssi_signo != SIGHUP)
            begin_shutdown(arg, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
}

/* ---- settings ---------------------------------------------------------------------------- */

static const char *setting(const char *flag, const char *env, const char *dflt)
{
    if (flag)
        return flag;
    const char *e = getenv(env);
    return e ? e : dflt;
}

static int read_settings(const struct bt_cli *cli, struct settings *s)
{
    s->socket =
        setting(cli->plugin_socket, "BPFTAIL_PLUGIN_SOCKET", "/run/docker/plugins/bpftail.sock");
    s->state_dir = setting(cli->plugin_state_dir, "BPFTAIL_STATE_DIR", "/var/lib/bpftail-plugin");
    s->metrics_addr = setting(cli->plugin_metrics_addr, "BPFTAIL_METRICS_ADDR", "");
    const char *sm = setting(cli->plugin_spool_max, "BPFTAIL_SPOOL_MAX", "1GiB");
    if (bt_parse_bytes(sm, &s->spool_max) < 0) {
        fprintf(stderr, "bpftail: BPFTAIL_SPOOL_MAX / -plugin.spool-max: bad size \"%s\"\n", sm);
        return -EINVAL;
    }
    const char *lvl = cli->log_level ? cli->log_level : getenv("LOG_LEVEL");
    enum bt_log_level l;
    if (lvl && *lvl) {
        if (bt_log_parse_level(lvl, &l) < 0) {
            fprintf(stderr, "bpftail: LOG_LEVEL: unknown level \"%s\"\n", lvl);
            return -EINVAL;
        }
        bt_log_set_level(l);
    }
    return 0;
}

static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *s = '/';
    }
    return mkdir(buf, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

static int start_metrics(struct bt_plugin *p, const char *addr, char *err, size_t errlen)
{
    const char *colon = strrchr(addr, ':');
    char host[256] = "";
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || end == colon + 1 || *end || port < 0 || port > 65535 ||
        (size_t)(colon - addr) >= sizeof(host)) {
        snprintf(err, errlen, "BPFTAIL_METRICS_ADDR: expected host:port or :port, got \"%s\"",
                 addr);
        return -EINVAL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct bt_httpd_handlers h = {.metrics = p->metrics, .ready = h_ready, .ctx = p};
    p->metrics_http = bt_httpd_new(p->loop, host, (int)port, &h, err, errlen);
    if (!p->metrics_http)
        return -EINVAL;
    BT_INFO(COMP, "metrics listening", "addr=%s port=%d", host[0] ? host : "*",
            bt_httpd_port(p->metrics_http));
    return 0;
}

static void init_metrics(struct bt_plugin *p)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "version=\"%s\"", BT_VERSION);
    bt_gauge_set(bt_metrics_gauge(p->metrics, "bpftail_build_info", "bpftail version.", labels), 1);
    p->m_containers = bt_metrics_gauge(p->metrics, "bpftail_plugin_containers",
                                       "Containers the plugin reads or still ships.", NULL);
    p->m_unknown_opt =
        bt_metrics_counter(p->metrics, "bpftail_plugin_unknown_options_total",
                           "Distinct unknown log-opts seen (each logged once).", NULL);
    bt_gauge_set(bt_metrics_gauge(p->metrics, "bpftail_plugin_spool_limit_bytes",
                                  "Bytes all spools may hold (BPFTAIL_SPOOL_MAX).", NULL),
                 0);
}

static void plugin_free(struct bt_plugin *p)
{
    bt_httpd_free(p->sock);
    bt_httpd_free(p->metrics_http);
    /* Push threads first: undecided batches come back ABANDONED, so no commit passes them and
     * their lines are read from the spool again at the next start. They are taken back only
     * once the containers (spools, ack owners) are closed: see drain_done. */
    p->exiting = true;
    for (struct pl_client *c = p->clients; c; c = c->next)
        bt_client_stop(c->client, bt_mono_ns());
    while (p->containers) {
        struct pl_container *c = p->containers;
        p->containers = c->next;
        pl_container_free(c, false);
    }
    while (p->clients) { /* only clients whose containers failed half-way */
        struct pl_client *c = p->clients;
        p->clients = c->next;
        client_free(c);
    }
    bt_spool_group_free(p->group);
    if (p->sigfd >= 0)
        close(p->sigfd);
    bt_loop_free(p->loop);
    bt_metrics_free(p->metrics);
    for (size_t i = 0; i < p->n_unknown; i++)
        free(p->unknown_seen[i]);
    free(p->unknown_seen);
    free(p->state_dir);
    free(p);
}

int bt_plugin_main(const struct bt_cli *cli)
{
    struct settings s;
    char err[2048] = "";
    if (read_settings(cli, &s) < 0)
        return 1;
    struct bt_plugin *p = calloc(1, sizeof(*p));
    if (!p)
        return 1;
    p->sigfd = -1;
    p->tick_at = INT64_MAX;
    p->state_dir = strdup(s.state_dir);
    p->loop = bt_loop_new();
    p->metrics = bt_metrics_new();
    p->group = bt_spool_group_new(s.spool_max);
    if (!p->state_dir || !p->loop || !p->metrics || !p->group) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    if (gethostname(p->hostname, sizeof(p->hostname) - 1) < 0)
        snprintf(p->hostname, sizeof(p->hostname), "localhost");
    init_metrics(p);
    bt_gauge_set(bt_metrics_gauge(p->metrics, "bpftail_plugin_spool_limit_bytes",
                                  "Bytes all spools may hold (BPFTAIL_SPOOL_MAX).", NULL),
                 (double)s.spool_max);
    int rc = mkdirs(p->state_dir);
    if (rc < 0) {
        snprintf(err, sizeof(err), "state directory %s: %s", p->state_dir, strerror(-rc));
        goto fail;
    }
    p->sigfd = bt_loop_add_signals(p->loop, on_signal, p);
    if (p->sigfd < 0) {
        snprintf(err, sizeof(err), "signals: %s", strerror(-p->sigfd));
        goto fail;
    }
    restore(p);
    char sockdir[4096];
    snprintf(sockdir, sizeof(sockdir), "%s", s.socket);
    char *slash = strrchr(sockdir, '/');
    if (slash && slash != sockdir) {
        *slash = '\0';
        mkdirs(sockdir);
    }
    struct bt_httpd_handlers h = {.post = on_post, .post_max_body = MAX_REQUEST, .ctx = p};
    p->sock = bt_httpd_new_unix(p->loop, s.socket, &h, err, sizeof(err));
    if (!p->sock)
        goto fail;
    if (s.metrics_addr[0] && start_metrics(p, s.metrics_addr, err, sizeof(err)) < 0)
        goto fail;
    bt_loop_set_before_sleep(p->loop, before_sleep, p);
    bt_loop_add_timer(p->loop, SYNC_PERIOD_NS, SYNC_PERIOD_NS, on_sync, p);
    BT_INFO(COMP, "bpftail Docker logging plugin started",
            "version=%s socket=%s state_dir=%s "
            "spool_max=%llu containers=%.0f",
            BT_VERSION, s.socket, p->state_dir, (unsigned long long)s.spool_max,
            bt_series_value(p->m_containers));
    rc = bt_loop_run(p->loop);
    if (rc < 0)
        BT_ERROR(COMP, "event loop failed", "err=%s", strerror(-rc));
    size_t abandoned = 0;
    for (struct pl_client *c = p->clients; c; c = c->next)
        abandoned += bt_client_stop(c->client, bt_mono_ns());
    BT_INFO(COMP, "stopped; unsent lines stay in the spools for the next start",
            "unsent_batches=%zu", abandoned);
    plugin_free(p);
    return rc < 0 ? 1 : 0;
fail:
    fprintf(stderr, "bpftail: %s\n", err[0] ? err : "cannot start the plugin");
    plugin_free(p);
    return 1;
}
