#include "source/file_sd.h"

#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/labels.h"
#include "core/loop.h"
#include "config/node.h"
#include "source/relabel.h"
#include "util/buf.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"

#define COMP "file_sd"
#define SETTLE_NS (50 * BT_NS_PER_MS)
#define DEFAULT_REFRESH_NS (300 * BT_NS_PER_SEC)
#define MAX_FILE (16u << 20)

/* What one discovery file gave last time it was read. */
struct sdfile {
    struct timespec mtime;
    off_t size;
    bool seen;
    struct bt_labels *sets; /* after relabeling, __path__ present */
    size_t n;
};

/* A reported target: its labels, and whether this refresh still has it. */
struct tgt {
    struct bt_labels labels;
    bool seen;
};

struct bt_file_sd {
    char **globs;
    size_t n_globs;
    int64_t refresh_ns;
    struct bt_relabel *relabel;
    bt_file_sd_fn fn;
    void *ctx;
    struct bt_loop *loop;
    int ino_fd;
    uint64_t refresh_timer, settle_timer;
    struct bt_hmap files;   /* path -> struct sdfile */
    struct bt_hmap targets; /* key of the labels -> struct tgt */
    struct bt_buf key;
};

/* ---- reading one file ---- */

static void free_sets(struct bt_labels *sets, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bt_labels_free(&sets[i]);
    free(sets);
}

static bool has_ext(const char *p, const char *ext)
{
    size_t n = strlen(p), e = strlen(ext);
    return n > e && strcasecmp(p + n - e, ext) == 0; /* Prometheus takes .JSON, .YML too */
}

/* Parses path into label sets (relabeled). 0, or -EINVAL with a warning logged. */
static int read_groups(struct bt_file_sd *sd, const char *path, struct bt_labels **out,
                       size_t *nout)
{
    char err[512] = "";
    struct stat st;
    if (stat(path, &st) < 0 || st.st_size > (off_t)MAX_FILE) {
        BT_WARN(COMP, "cannot read target file", "path=%s", path);
        return -EINVAL;
    }
    struct bt_node *root = bt_yaml_parse_file(path, err, sizeof(err));
    if (!root && err[0]) {
        BT_WARN(COMP, "cannot parse target file, its targets stay", "path=%s err=\"%s\"", path,
                err);
        return -EINVAL;
    }
    struct bt_labels *sets = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (!bt_node_is_null(root) && root->type != BT_NODE_SEQ)
        rc = -EINVAL;
    for (size_t g = 0; rc == 0 && root && root->type == BT_NODE_SEQ && g < root->n; g++) {
        const struct bt_node *grp = root->items[g];
        if (grp->type != BT_NODE_MAP) {
            rc = -EINVAL;
            break;
        }
        const struct bt_node *tl = bt_node_get(grp, "targets"), *ll = bt_node_get(grp, "labels");
        for (size_t i = 0; rc == 0 && i < grp->n; i++) {
            const char *k = bt_node_key(grp, i)->str;
            if (!k || (strcmp(k, "targets") != 0 && strcmp(k, "labels") != 0))
                rc = -EINVAL;
        }
        if (rc || (tl && !bt_node_is_null(tl) && tl->type != BT_NODE_SEQ) ||
            (ll && !bt_node_is_null(ll) && ll->type != BT_NODE_MAP)) {
            rc = -EINVAL;
            break;
        }
        for (size_t t = 0; tl && tl->type == BT_NODE_SEQ && t < tl->n; t++) {
            if (tl->items[t]->type != BT_NODE_SCALAR) {
                rc = -EINVAL;
                break;
            }
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 8;
                struct bt_labels *ns = realloc(sets, nc * sizeof(*ns));
                if (!ns) {
                    rc = -ENOMEM;
                    break;
                }
                sets = ns;
                cap = nc;
            }
            struct bt_labels *l = &sets[n];
            bt_labels_init(l);
            for (size_t m = 0; ll && ll->type == BT_NODE_MAP && m < ll->n; m++) {
                const struct bt_node *lk = bt_node_key(ll, m), *lv = bt_node_val(ll, m);
                if (!lk->str || !bt_label_name_valid(lk->str, lk->len) ||
                    lv->type != BT_NODE_SCALAR) {
                    rc = -EINVAL;
                    break;
                }
                rc = rc ? rc : bt_labels_set(l, lk->str, lv->str);
            }
            rc = rc ? rc : bt_labels_set(l, "__address__", tl->items[t]->str);
            rc = rc ? rc : bt_labels_set(l, "__meta_filepath", path);
            int keep = rc ? BT_RELABEL_DROP : bt_relabel_apply(sd->relabel, l);
            if (keep == BT_RELABEL_KEEP && bt_labels_get(l, "__path__"))
                n++;
            else
                bt_labels_free(l);
        }
    }
    bt_node_free(root);
    if (rc) {
        free_sets(sets, n);
        BT_WARN(COMP, "target file is not a list of {targets, labels}, its targets stay", "path=%s",
                path);
        return -EINVAL;
    }
    *out = sets;
    *nout = n;
    return 0;
}

/* ---- refresh ---- */

/* The identity of a label set, "__" labels included (the canonical string drops them). */
static const char *set_key(struct bt_file_sd *sd, const struct bt_labels *l, size_t *len)
{
    bt_buf_reset(&sd->key);
    for (size_t i = 0; i < l->n; i++) {
        bt_buf_add(&sd->key, l->v[i].name, l->v[i].name_len + 1);
        bt_buf_add(&sd->key, l->v[i].value, l->v[i].value_len + 1);
    }
    *len = sd->key.len;
    return sd->key.ptr ? sd->key.ptr : "";
}

static void visit_file(struct bt_file_sd *sd, const char *path)
{
    if (!has_ext(path, ".json") && !has_ext(path, ".yml") && !has_ext(path, ".yaml"))
        return;
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    struct sdfile *f = bt_hmap_get(&sd->files, path, strlen(path));
    if (f && f->mtime.tv_sec == st.st_mtim.tv_sec && f->mtime.tv_nsec == st.st_mtim.tv_nsec &&
        f->size == st.st_size) {
        f->seen = true;
        return;
    }
    struct bt_labels *sets;
    size_t n;
    if (read_groups(sd, path, &sets, &n) < 0) {
        if (f)
            f->seen = true; /* keep what it gave before */
        return;
    }
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f || bt_hmap_put(&sd->files, path, strlen(path), f, NULL) < 0) {
            free(f);
            free_sets(sets, n);
            return;
        }
    }
    free_sets(f->sets, f->n);
    f->sets = sets;
    f->n = n;
    f->mtime = st.st_mtim;
    f->size = st.st_size;
    f->seen = true;
}

size_t bt_file_sd_refresh(struct bt_file_sd *sd)
{
    size_t pos = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&sd->files, &pos)))
        ((struct sdfile *)s->val)->seen = false;
    for (size_t i = 0; i < sd->n_globs; i++) {
        glob_t g;
        if (glob(sd->globs[i], 0, NULL, &g) == 0)
            for (size_t k = 0; k < g.gl_pathc; k++)
                visit_file(sd, g.gl_pathv[k]);
        globfree(&g);
    }
    /* Files no longer matched (deleted) take their targets with them. */
    pos = 0;
    while ((s = bt_hmap_next(&sd->files, &pos))) {
        struct sdfile *f = s->val;
        if (f->seen)
            continue;
        bt_hmap_del(&sd->files, s->key, s->klen);
        free_sets(f->sets, f->n);
        free(f);
    }
    pos = 0;
    while ((s = bt_hmap_next(&sd->targets, &pos)))
        ((struct tgt *)s->val)->seen = false;
    pos = 0;
    while ((s = bt_hmap_next(&sd->files, &pos))) {
        struct sdfile *f = s->val;
        for (size_t i = 0; i < f->n; i++) {
            size_t kl;
            const char *k = set_key(sd, &f->sets[i], &kl);
            struct tgt *t = bt_hmap_get(&sd->targets, k, kl);
            if (t) {
                t->seen = true;
                continue;
            }
            t = calloc(1, sizeof(*t));
            if (!t)
                continue;
            bt_labels_init(&t->labels);
            if (bt_labels_copy(&t->labels, &f->sets[i]) < 0 ||
                bt_hmap_put(&sd->targets, k, kl, t, NULL) < 0) {
                bt_labels_free(&t->labels);
                free(t);
                continue;
            }
            t->seen = true;
            BT_INFO(COMP, "target added", "path=%s", bt_labels_get(&t->labels, "__path__"));
            sd->fn(sd->ctx, &t->labels, true);
        }
    }
    pos = 0;
    while ((s = bt_hmap_next(&sd->targets, &pos))) {
        struct tgt *t = s->val;
        if (t->seen)
            continue;
        BT_INFO(COMP, "target removed", "path=%s", bt_labels_get(&t->labels, "__path__"));
        sd->fn(sd->ctx, &t->labels, false);
        bt_hmap_del(&sd->targets, s->key, s->klen);
        bt_labels_free(&t->labels);
        free(t);
    }
    return sd->targets.n;
}

size_t bt_file_sd_count(const struct bt_file_sd *sd)
{
    return sd->targets.n;
}

/* ---- loop wiring ---- */

static void settle_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    struct bt_file_sd *sd = arg;
    sd->settle_timer = 0;
    bt_file_sd_refresh(sd);
}

static void refresh_fire(struct bt_loop *l, uint64_t id, void *arg)
{
    bt_file_sd_refresh(arg);
}

static void ino_ready(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_file_sd *sd = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    while (read(fd, buf, sizeof(buf)) > 0)
        ; /* any change means "read again"; the files are the truth */
    if (!sd->settle_timer)
        sd->settle_timer = bt_loop_add_timer(sd->loop, SETTLE_NS, 0, settle_fire, sd);
}

static void watch_dirs(struct bt_file_sd *sd)
{
    sd->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (sd->ino_fd < 0)
        return;
    for (size_t i = 0; i < sd->n_globs; i++) {
        char *copy = strdup(sd->globs[i]);
        if (!copy)
            continue;
        const char *dir = dirname(copy);
        if (inotify_add_watch(sd->ino_fd, dir,
                              IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
                                  IN_ONLYDIR) < 0)
            BT_WARN(COMP, "cannot watch directory, reading it every refresh_interval",
                    "dir=%s err=\"%s\"", dir, strerror(errno));
        free(copy);
    }
    if (bt_loop_add_fd(sd->loop, sd->ino_fd, EPOLLIN, ino_ready, sd) < 0) {
        close(sd->ino_fd);
        sd->ino_fd = -1;
    }
}

/* ---- config ---- */

static int fail(char *err, size_t errlen, const struct bt_node *n, const char *msg)
{
    char where[256];
    snprintf(err, errlen, "%s: file_sd_configs: %s", bt_node_where(n, where, sizeof(where)), msg);
    return -EINVAL;
}

static int parse_cfg(struct bt_file_sd *sd, const struct bt_node *cfg, char *err, size_t errlen)
{
    sd->refresh_ns = DEFAULT_REFRESH_NS;
    if (!cfg || cfg->type != BT_NODE_MAP)
        return fail(err, errlen, cfg, "expected a map with files");
    for (size_t i = 0; i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i), *v = bt_node_val(cfg, i);
        const char *key = k->str ? k->str : "";
        if (strcmp(key, "files") == 0 && v->type == BT_NODE_SEQ) {
            for (size_t f = 0; f < v->n; f++) {
                const struct bt_node *p = v->items[f];
                if (p->type != BT_NODE_SCALAR || !p->len)
                    return fail(err, errlen, p, "files: expected a path pattern");
                if (!has_ext(p->str, ".json") && !has_ext(p->str, ".yml") &&
                    !has_ext(p->str, ".yaml") && !has_ext(p->str, "*"))
                    return fail(err, errlen, p,
                                "files: a pattern must end in .json, .yml, .yaml or *");
                char **g = realloc(sd->globs, (sd->n_globs + 1) * sizeof(*g));
                if (!g)
                    return -ENOMEM;
                sd->globs = g;
                if (!(g[sd->n_globs] = strdup(p->str)))
                    return -ENOMEM;
                sd->n_globs++;
            }
        } else if (strcmp(key, "refresh_interval") == 0) {
            long long ns;
            if (bt_node_duration(v, &ns) || ns <= 0)
                return fail(err, errlen, v, "refresh_interval must be a positive duration");
            sd->refresh_ns = ns;
        } else {
            char msg[300];
            snprintf(msg, sizeof(msg), "unknown key or bad value \"%.200s\"", key);
            return fail(err, errlen, k, msg);
        }
    }
    if (!sd->n_globs)
        return fail(err, errlen, cfg, "files is required");
    return 0;
}

struct bt_file_sd *bt_file_sd_new(const struct bt_node *cfg, struct bt_loop *loop,
                                  struct bt_relabel *relabel, bt_file_sd_fn fn, void *ctx,
                                  char *err, size_t errlen)
{
    struct bt_file_sd *sd = calloc(1, sizeof(*sd));
    if (!sd) {
        snprintf(err, errlen, "file_sd_configs: out of memory");
        return NULL;
    }
    sd->ino_fd = -1;
    sd->relabel = relabel;
    sd->fn = fn;
    sd->ctx = ctx;
    sd->loop = loop;
    bt_hmap_init(&sd->files);
    bt_hmap_init(&sd->targets);
    bt_buf_init(&sd->key, 1u << 20);
    int rc = parse_cfg(sd, cfg, err, errlen);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "file_sd_configs: out of memory");
    if (rc < 0) {
        bt_file_sd_free(sd);
        return NULL;
    }
    if (loop) {
        watch_dirs(sd);
        sd->refresh_timer =
            bt_loop_add_timer(loop, sd->refresh_ns, sd->refresh_ns, refresh_fire, sd);
        bt_file_sd_refresh(sd);
    }
    return sd;
}

void bt_file_sd_free(struct bt_file_sd *sd)
{
    if (!sd)
        return;
    if (sd->loop) {
        if (sd->ino_fd >= 0)
            bt_loop_del_fd(sd->loop, sd->ino_fd);
        if (sd->refresh_timer)
            bt_loop_del_timer(sd->loop, sd->refresh_timer);
        if (sd->settle_timer)
            bt_loop_del_timer(sd->loop, sd->settle_timer);
    }
    if (sd->ino_fd >= 0)
        close(sd->ino_fd);
    size_t pos = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&sd->files, &pos))) {
        struct sdfile *f = s->val;
        free_sets(f->sets, f->n);
        free(f);
    }
    pos = 0;
    while ((s = bt_hmap_next(&sd->targets, &pos))) {
        struct tgt *t = s->val;
        bt_labels_free(&t->labels);
        free(t);
    }
    bt_hmap_free(&sd->files);
    bt_hmap_free(&sd->targets);
    for (size_t i = 0; i < sd->n_globs; i++)
        free(sd->globs[i]);
    free(sd->globs);
    bt_buf_free(&sd->key);
    free(sd);
}
