#include "source/source_docker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/labels.h"
#include "core/loop.h"
#include "config/node.h"
#include "source/relabel.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"

#define COMP "docker"
#define CONFIG_MAX (4u << 20) /* config.v2.json is a few KiB; refuse absurd files */
/* A container's log starts right after its config: every millisecond between the two is log
 * Docker may rotate away before the target exists, so new containers are looked at quickly. */
#define RETRY_NS (50 * BT_NS_PER_MS)
#define SETTLE_NS (5 * BT_NS_PER_MS)
#define MAX_CONTAINERS 65536

struct ctr {
    char id[72];
    struct timespec mtime; /* of config.v2.json when last parsed */
    bool parsed;           /* mtime valid */
    bool reported;         /* the callback has labels for it */
    bool seen;             /* found in the current scan */
    int wd;                /* inotify watch on its directory while its config is missing */
    struct bt_labels labels;
};

struct bt_docker_disc {
    char *path;
    int64_t refresh_ns;
    struct bt_labels statics;
    struct bt_relabel *relabel;
    bt_docker_target_fn fn;
    void *ctx;
    struct bt_loop *loop;
    int ino_fd;
    uint64_t refresh_timer, quick_timer;
    struct bt_hmap ctrs; /* id -> struct ctr */
    size_t n_reported;
    struct bt_labels scratch;
    bool dir_missing_logged;
};

char *bt_docker_label_name(char *out, size_t outlen, const char *prefix, const char *name)
{
    if (!outlen)
        return out;
    size_t i = 0;
    for (const char *p = prefix; *p && i + 1 < outlen; p++)
        out[i++] = *p;
    for (const char *p = name; *p && i + 1 < outlen; p++) {
        char c = *p;
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        out[i++] = ok ? c : '_';
    }
    out[i] = 0;
    return out;
}

/* ---- reading one container ---- */

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Fills d->scratch from the parsed config. 1, or -ENOMEM. */
static int build_labels(struct bt_docker_disc *d, const char *id, json_t *root)
{
    struct bt_labels *l = &d->scratch;
    char buf[4096], name[512];
    int rc = bt_labels_copy(l, &d->statics);
    const char *nm = jstr(root, "Name");
    json_t *cfg = json_object_get(root, "Config");
    const char *image = json_is_object(cfg) ? jstr(cfg, "Image") : NULL;
    json_t *labels = json_is_object(cfg) ? json_object_get(cfg, "Labels") : NULL;

    snprintf(buf, sizeof(buf), "%s/%s/%s-json.log*", d->path, id, id);
    rc = rc ? rc : bt_labels_set(l, "__path__", buf);
    snprintf(buf, sizeof(buf), "%s/%s/*.gz", d->path, id);
    rc = rc ? rc : bt_labels_set(l, "__path_exclude__", buf);
    rc = rc ? rc : bt_labels_set(l, "container_id", id);
    rc = rc ? rc : bt_labels_set(l, "__meta_docker_container_id", id);
    if (nm) {
        rc = rc ? rc : bt_labels_set(l, "__meta_docker_container_name", nm);
        rc = rc ? rc : bt_labels_set(l, "container_name", nm[0] == '/' ? nm + 1 : nm);
    }
    if (image)
        rc = rc ? rc : bt_labels_set(l, "image", image);
    if (json_is_object(labels)) {
        const char *k;
        json_t *v;
        json_object_foreach(labels, k, v)
        {
            if (!json_is_string(v))
                continue;
            bt_docker_label_name(name, sizeof(name), "__meta_docker_container_label_", k);
            rc = rc ? rc : bt_labels_set(l, name, json_string_value(v));
        }
        const char *proj = jstr(labels, "com.docker.compose.project");
        const char *svc = jstr(labels, "com.docker.compose.service");
        if (proj)
            rc = rc ? rc : bt_labels_set(l, "compose_project", proj);
        if (svc)
            rc = rc ? rc : bt_labels_set(l, "compose_service", svc);
    }
    return rc < 0 ? rc : 1;
}

static void report(struct bt_docker_disc *d, struct ctr *c, const struct bt_labels *l)
{
    if (l) {
        if (c->reported && bt_labels_equal(&c->labels, l))
            return;
        if (bt_labels_copy(&c->labels, l) < 0)
            return;
        BT_INFO(COMP, c->reported ? "container changed" : "container found", "id=%.12s path=%s",
                c->id, d->path);
        if (!c->reported)
            d->n_reported++;
        c->reported = true;
        d->fn(d->ctx, c->id, &c->labels);
    } else if (c->reported) {
        c->reported = false;
        d->n_reported--;
        BT_INFO(COMP, "container gone", "id=%.12s", c->id);
        d->fn(d->ctx, c->id, NULL);
    }
}

/* Watches a fresh container's directory so its config files wake us as soon as they land. */
static int wait_for_config(struct bt_docker_disc *d, struct ctr *c)
{
    if (d->ino_fd >= 0 && c->wd <= 0) {
        char p[4096];
        snprintf(p, sizeof(p), "%s/%s", d->path, c->id);
        c->wd =
            inotify_add_watch(d->ino_fd, p, IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR);
    }
    return 1;
}

/* Parses a JSON file of at most CONFIG_MAX bytes; NULL if missing, larger, or not JSON. */
static json_t *load_capped(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)CONFIG_MAX)
        return NULL;
    json_error_t jerr;
    return json_load_file(path, 0, &jerr);
}

/* The log driver from hostconfig.json: 1 json-file (or unset), 0 another, -1 not readable yet. */
static int json_file_driver(struct bt_docker_disc *d, struct ctr *c)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s/hostconfig.json", d->path, c->id);
    json_t *root = load_capped(p);
    if (!json_is_object(root)) {
        json_decref(root);
        return -1;
    }
    json_t *lc = json_object_get(root, "LogConfig");
    const char *type = json_is_object(lc) ? jstr(lc, "Type") : NULL;
    int rc = !type || !*type || strcmp(type, "json-file") == 0;
    json_decref(root);
    return rc;
}

/* Re-reads a container's config if it changed. Returns 1 when its config is missing or
 * unreadable yet (a fresh container), else 0. Docker writes config.v2.json and hostconfig.json
 * when the container is created, before its log exists, so a container is reported before it
 * prints anything and the file target sees its log from the first byte. */
static int refresh_ctr(struct bt_docker_disc *d, struct ctr *c)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s/%s/config.v2.json", d->path, c->id);
    struct stat st;
    if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
        return wait_for_config(d, c);
    if (c->parsed && st.st_mtim.tv_sec == c->mtime.tv_sec && st.st_mtim.tv_nsec == c->mtime.tv_nsec)
        return 0;
    if (st.st_size > (off_t)CONFIG_MAX) {
        static struct bt_ratelimit rl = BT_RATELIMIT_INIT(60);
        uint64_t sup;
        if (bt_ratelimit_ok(&rl, &sup))
            BT_WARN(COMP, "container config too large, skipped", "path=%s size=%lld", p,
                    (long long)st.st_size);
        return 0;
    }
    json_t *root = load_capped(p);
    int driver = json_is_object(root) ? json_file_driver(d, c) : -1;
    if (driver < 0) {
        json_decref(root);
        return wait_for_config(d, c); /* written with a rename each, so this is brief */
    }
    if (c->wd > 0) {
        inotify_rm_watch(d->ino_fd, c->wd);
        c->wd = 0;
    }
    c->mtime = st.st_mtim;
    c->parsed = true;
    int rc = driver ? build_labels(d, c->id, root) : 0;
    json_decref(root);
    if (rc == 1) {
        int keep = bt_relabel_apply(d->relabel, &d->scratch);
        report(d, c, keep == BT_RELABEL_KEEP ? &d->scratch : NULL);
    } else {
        report(d, c, NULL); /* another log driver: nothing on disk to follow */
    }
    return 0;
}

static bool is_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 12 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void forget(struct bt_docker_disc *d, struct ctr *c)
{
    report(d, c, NULL);
    if (c->wd > 0)
        inotify_rm_watch(d->ino_fd, c->wd); /* usually gone with the directory already */
    bt_hmap_del(&d->ctrs, c->id, strlen(c->id));
    bt_labels_free(&c->labels);
    free(c);
}

int bt_docker_disc_scan(struct bt_docker_disc *d)
{
    DIR *dir = opendir(d->path);
    int pending = 0;
    size_t pos = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&d->ctrs, &pos)))
        ((struct ctr *)s->val)->seen = false;
    if (!dir) {
        int e = errno;
        if (e != ENOENT) {
            BT_WARN(COMP, "cannot read containers directory", "path=%s err=\"%s\"", d->path,
                    strerror(e));
            return -e;
        }
        if (!d->dir_missing_logged)
            BT_INFO(COMP, "containers directory missing, waiting", "path=%s", d->path);
        d->dir_missing_logged = true;
    }
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        if (!is_id(de->d_name))
            continue;
        struct ctr *c = bt_hmap_get(&d->ctrs, de->d_name, strlen(de->d_name));
        if (!c) {
            if (d->ctrs.n >= MAX_CONTAINERS)
                continue;
            c = calloc(1, sizeof(*c));
            if (!c)
                continue;
            /* is_id() accepted at most 64 hex digits, so the name fits c->id. */
            size_t idlen = strlen(de->d_name);
            memcpy(c->id, de->d_name, idlen);
            c->id[idlen] = '\0';
            bt_labels_init(&c->labels);
            if (bt_hmap_put(&d->ctrs, c->id, strlen(c->id), c, NULL) < 0) {
                free(c);
                continue;
            }
        }
        c->seen = true;
        pending += refresh_ctr(d, c);
    }
    if (dir)
        closedir(dir);
    pos = 0;
    while ((s = bt_hmap_next(&d->ctrs, &pos)))
        if (!((struct ctr *)s->val)->seen)
            forget(d, s->val);
    return pending;
}

/* ---- loop wiring ---- */

static void quick_fire(struct bt_loop *l, uint64_t id, void *arg);

static void scan_and_retry(struct bt_docker_disc *d)
{
    int pending = bt_docker_disc_scan(d);
    if (pending > 0 && d->loop && !d->quick_timer)
        d->quick_timer = bt_loop_add_timer(d->loop, RETRY_NS, 0, quick_fire, d);
}

static void quick_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_docker_disc *d = arg;
    d->quick_timer = 0;
    scan_and_retry(d);
}

static void refresh_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    scan_and_retry(arg);
}

static void ino_ready(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_docker_disc *d = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(fd, buf, sizeof(buf)) > 0)
        ; /* any change means "look again"; the scan is the truth */
    if (!d->quick_timer)
        d->quick_timer = bt_loop_add_timer(d->loop, SETTLE_NS, 0, quick_fire, d);
}

static int watch_dir(struct bt_docker_disc *d)
{
    d->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->ino_fd < 0)
        return -errno;
    if (inotify_add_watch(d->ino_fd, d->path,
                          IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ONLYDIR) < 0) {
        int e = errno;
        close(d->ino_fd);
        d->ino_fd = -1;
        return -e;
    }
    return bt_loop_add_fd(d->loop, d->ino_fd, EPOLLIN, ino_ready, d);
}

/* ---- config ---- */

static int parse_cfg(struct bt_docker_disc *d, const struct bt_node *cfg, char *err, size_t errlen)
{
    char where[256];
    const char *path = "/var/lib/docker/containers";
    d->refresh_ns = 5 * BT_NS_PER_SEC;
    if (!bt_node_is_null(cfg) && cfg->type != BT_NODE_MAP) {
        snprintf(err, errlen, "%s: docker: expected a map", bt_node_where(cfg, where, 256));
        return -EINVAL;
    }
    for (size_t i = 0; !bt_node_is_null(cfg) && i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i), *v = bt_node_val(cfg, i);
        const char *key = k->str ? k->str : "";
        if (strcmp(key, "path") == 0 && v->type == BT_NODE_SCALAR && v->len) {
            path = v->str;
        } else if (strcmp(key, "refresh_interval") == 0) {
            long long ns;
            if (bt_node_duration(v, &ns) || ns <= 0) {
                snprintf(err, errlen, "%s: docker: refresh_interval must be a positive duration",
                         bt_node_where(v, where, sizeof(where)));
                return -EINVAL;
            }
            d->refresh_ns = ns;
        } else if (strcmp(key, "labels") == 0 && (v->type == BT_NODE_MAP || bt_node_is_null(v))) {
            for (size_t j = 0; v->type == BT_NODE_MAP && j < v->n; j++) {
                const struct bt_node *lk = bt_node_key(v, j), *lv = bt_node_val(v, j);
                if (!lk->str || !bt_label_name_valid(lk->str, lk->len) ||
                    lv->type != BT_NODE_SCALAR) {
                    snprintf(err, errlen, "%s: docker: invalid label %s",
                             bt_node_where(lk, where, sizeof(where)), lk->str ? lk->str : "");
                    return -EINVAL;
                }
                if (bt_labels_set(&d->statics, lk->str, lv->str) < 0)
                    return -ENOMEM;
            }
        } else {
            snprintf(err, errlen, "%s: docker: unknown key or bad value \"%s\"",
                     bt_node_where(k, where, sizeof(where)), key);
            return -EINVAL;
        }
    }
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    d->path = strndup(path, n);
    return d->path ? 0 : -ENOMEM;
}

struct bt_docker_disc *bt_docker_disc_new(const struct bt_node *cfg, struct bt_loop *loop,
                                          struct bt_relabel *relabel, bt_docker_target_fn fn,
                                          void *ctx, char *err, size_t errlen)
{
    struct bt_docker_disc *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(err, errlen, "docker: out of memory");
        return NULL;
    }
    d->ino_fd = -1;
    d->relabel = relabel;
    d->fn = fn;
    d->ctx = ctx;
    d->loop = loop;
    bt_labels_init(&d->statics);
    bt_labels_init(&d->scratch);
    bt_hmap_init(&d->ctrs);
    int rc = parse_cfg(d, cfg, err, errlen);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "docker: out of memory");
    if (rc < 0)
        goto fail;
    if (loop) {
        rc = watch_dir(d);
        if (rc < 0)
            BT_WARN(COMP, "cannot watch containers directory, polling it", "path=%s err=\"%s\"",
                    d->path, strerror(-rc));
        d->refresh_timer = bt_loop_add_timer(loop, d->refresh_ns, d->refresh_ns, refresh_fire, d);
        if (!d->refresh_timer) {
            snprintf(err, errlen, "docker: cannot add a timer");
            rc = -ENOMEM;
            goto fail;
        }
        scan_and_retry(d);
    }
    return d;
fail:
    bt_docker_disc_free(d);
    errno = -rc;
    return NULL;
}

void bt_docker_disc_free(struct bt_docker_disc *d)
{
    if (!d)
        return;
    if (d->loop) {
        if (d->ino_fd >= 0)
            bt_loop_del_fd(d->loop, d->ino_fd);
        if (d->refresh_timer)
            bt_loop_del_timer(d->loop, d->refresh_timer);
        if (d->quick_timer)
            bt_loop_del_timer(d->loop, d->quick_timer);
    }
    if (d->ino_fd >= 0)
        close(d->ino_fd);
    size_t pos = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&d->ctrs, &pos))) {
        struct ctr *c = s->val;
        bt_labels_free(&c->labels);
        free(c);
    }
    bt_hmap_free(&d->ctrs);
    bt_labels_free(&d->statics);
    bt_labels_free(&d->scratch);
    free(d->path);
    free(d);
}

size_t bt_docker_disc_count(const struct bt_docker_disc *d)
{
    return d->n_reported;
}

const char *bt_docker_disc_path(const struct bt_docker_disc *d)
{
    return d->path;
}
