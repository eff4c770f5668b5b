/*
 * fim: see fim.h. Rules are resolved into two sets that mirror what the kernel watches:
 *   files  {dev, ino} -> path    every existing file a rule names or a glob matches
 *   dirs   path                  directories of globs, directory rules, and the parents of
 *                                named files that do not exist yet (to see them appear)
 * Resolution runs at start, after create/rename/unlink events and on a slow timer; entries
 * not seen in the latest pass are removed. Events are filtered again here per rule (the
 * kernel gets the union of all rules' operations).
 */
#include "source/fim.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "config/node.h"
#include "util/buf.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "watch/watch_bpf.h"

#define FIM_LINE_MAX 8192
#define FIM_MAX_RULES 256
#define FIM_MAX_FILES 65536
/* Operations the kernel must report for resolution to notice replaced and new files, and to
 * follow a watched file under its new names (rename, link). */
#define FIM_RECONCILE_OPS                                                                          \
    (BT_FE_OPBIT(BT_FE_CREATE) | BT_FE_OPBIT(BT_FE_RENAME) | BT_FE_OPBIT(BT_FE_UNLINK) |           \
     BT_FE_OPBIT(BT_FE_LINK))
#define FIM_DEFAULT_OPS                                                                            \
    (BT_FE_OPBIT(BT_FE_WRITE) | BT_FE_OPBIT(BT_FE_CREATE) | BT_FE_OPBIT(BT_FE_TRUNCATE) |          \
     BT_FE_OPBIT(BT_FE_RENAME) | BT_FE_OPBIT(BT_FE_UNLINK) | BT_FE_OPBIT(BT_FE_RMDIR) |            \
     BT_FE_OPBIT(BT_FE_CHMOD) | BT_FE_OPBIT(BT_FE_CHOWN) | BT_FE_OPBIT(BT_FE_LINK))
/* Rule-only bit: opens that can read (O_RDONLY, O_RDWR). The kernel is asked for all opens. */
#define FIM_READ (1u << 30)

struct fim_rule {
    char *pattern; /* absolute; directories without the trailing '/' */
    uint32_t ops;
    int is_dir; /* every entry directly inside */
    int has_glob;
};

struct fim_file {
    char *path;
    dev_t dev;
    ino_t ino;
    unsigned gen;
};

struct fim_key {
    uint64_t dev, ino;
};

struct bt_fim {
    struct bt_loop *loop;
    bt_entry_sink_fn sink;
    void *ctx;
    struct fim_rule *rules;
    size_t n_rules;
    uint32_t all_ops;
    struct bt_watch w;
    int have_bpf, fd_added;
    int waiting; /* for the background BPF load */
    uint64_t timer;
    int64_t reconcile_ns;
    struct bt_hmap files; /* struct fim_key -> struct fim_file */
    struct bt_hmap dirs;  /* path -> unsigned gen (boxed) */
    struct bt_hmap alias; /* a watched file's later name (rename, link) -> struct fim_key */
    unsigned gen;
    int need_reconcile;
    struct bt_labels base, lbl;
    struct bt_buf line;
    struct bt_metrics *m;
    struct bt_series *ev_series[BT_FE_OP_MAX];
    struct bt_series *lost;
    struct bt_series *too_long;
};

static int has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* ---- configuration ---- */

static int cfg_err(char *err, size_t errlen, const struct bt_node *n, const char *fmt,
                   const char *arg)
{
    char where[256], msg[512];

    snprintf(msg, sizeof(msg), fmt, arg);
    snprintf(err, errlen, "%s: fim: %s", bt_node_where(n, where, sizeof(where)), msg);
    return -EINVAL;
}

static int op_parse(const char *s, uint32_t *mask)
{
    if (strcmp(s, "read") == 0) {
        *mask = FIM_READ;
        return 0;
    }
    return bt_fe_op_parse(s, mask);
}

static int parse_ops(const struct bt_node *n, uint32_t *ops, char *err, size_t errlen)
{
    uint32_t mask = 0, one;

    if (n->type == BT_NODE_SCALAR) {
        if (op_parse(n->str, &mask) < 0)
            return cfg_err(err, errlen, n, "unknown op \"%s\"", n->str);
        *ops = mask;
        return 0;
    }
    if (n->type != BT_NODE_SEQ || n->n == 0)
        return cfg_err(err, errlen, n, "%s", "ops must be a list of operation names");
    for (size_t i = 0; i < n->n; i++) {
        const struct bt_node *it = n->items[i];
        if (it->type != BT_NODE_SCALAR || op_parse(it->str, &one) < 0)
            return cfg_err(err, errlen, it, "unknown op \"%s\"",
                           it->type == BT_NODE_SCALAR ? it->str : "?");
        mask |= one;
    }
    *ops = mask;
    return 0;
}

static int add_rule(struct bt_fim *f, const struct bt_node *pn, uint32_t ops, char *err,
                    size_t errlen)
{
    struct fim_rule *r;
    struct stat st;
    size_t len;

    if (pn->type != BT_NODE_SCALAR || pn->len == 0)
        return cfg_err(err, errlen, pn, "%s", "a path must be a string");
    if (pn->str[0] != '/')
        return cfg_err(err, errlen, pn, "path \"%s\" must be absolute", pn->str);
    if (pn->len >= PATH_MAX)
        return cfg_err(err, errlen, pn, "%s", "path too long");
    if (f->n_rules >= FIM_MAX_RULES)
        return cfg_err(err, errlen, pn, "%s", "too many paths (max 256)");
    r = &f->rules[f->n_rules];
    r->pattern = strdup(pn->str);
    if (!r->pattern)
        return -ENOMEM;
    len = strlen(r->pattern);
    r->ops = ops;
    r->has_glob = has_glob(r->pattern);
    if (len > 1 && r->pattern[len - 1] == '/') {
        r->is_dir = 1;
        while (len > 1 && r->pattern[len - 1] == '/')
            r->pattern[--len] = '\0';
    } else if (!r->has_glob && stat(r->pattern, &st) == 0 && S_ISDIR(st.st_mode)) {
        r->is_dir = 1;
    }
    if (ops & BT_FE_OPBIT(BT_FE_WRITE))
        ops |= BT_FE_OPBIT(BT_FE_DIRTY); /* mmap stores and other non-write(2) writes */
    r->ops = ops;
    f->all_ops |= (ops & FIM_READ) ? (ops & ~FIM_READ) | BT_FE_OPBIT(BT_FE_OPEN) : ops;
    f->n_rules++;
    return 0;
}

static int parse_rule(struct bt_fim *f, const struct bt_node *rule, const struct bt_node *paths,
                      const struct bt_node *opsn, char *err, size_t errlen)
{
    uint32_t ops = FIM_DEFAULT_OPS;
    int rc;

    if (!paths)
        return cfg_err(err, errlen, rule, "%s", "a rule needs `paths`");
    if (opsn && (rc = parse_ops(opsn, &ops, err, errlen)) < 0)
        return rc;
    if (paths->type == BT_NODE_SCALAR)
        return add_rule(f, paths, ops, err, errlen);
    if (paths->type != BT_NODE_SEQ)
        return cfg_err(err, errlen, paths, "%s", "paths must be a list");
    for (size_t i = 0; i < paths->n; i++)
        if ((rc = add_rule(f, paths->items[i], ops, err, errlen)) < 0)
            return rc;
    return 0;
}

static int parse_labels(struct bt_fim *f, const struct bt_node *n, char *err, size_t errlen)
{
    if (n->type != BT_NODE_MAP)
        return cfg_err(err, errlen, n, "%s", "labels must be a map");
    for (size_t i = 0; i < n->n; i++) {
        const struct bt_node *k = bt_node_key(n, i), *v = bt_node_val(n, i);
        if (k->type != BT_NODE_SCALAR || !bt_label_name_valid(k->str, k->len))
            return cfg_err(err, errlen, k, "invalid label name \"%s\"",
                           k->type == BT_NODE_SCALAR ? k->str : "?");
        if (v->type != BT_NODE_SCALAR)
            return cfg_err(err, errlen, v, "label \"%s\" needs a string value", k->str);
        if (bt_labels_set(&f->base, k->str, v->str) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int parse_config(struct bt_fim *f, const struct bt_node *cfg, char *err, size_t errlen)
{
    const struct bt_node *rules = NULL, *paths = NULL, *ops = NULL;
    const char *job = "fim", *host = NULL;
    char hostbuf[256];
    int rc;

    if (cfg->type != BT_NODE_MAP)
        return cfg_err(err, errlen, cfg, "%s", "the fim section must be a map");
    for (size_t i = 0; i < cfg->n; i++) {
        const struct bt_node *k = bt_node_key(cfg, i), *v = bt_node_val(cfg, i);
        const char *key = k->type == BT_NODE_SCALAR ? k->str : "?";
        if (strcmp(key, "rules") == 0)
            rules = v;
        else if (strcmp(key, "paths") == 0)
            paths = v;
        else if (strcmp(key, "ops") == 0)
            ops = v;
        else if (strcmp(key, "job") == 0 && v->type == BT_NODE_SCALAR)
            job = v->str;
        else if (strcmp(key, "host") == 0 && v->type == BT_NODE_SCALAR)
            host = v->str;
        else if (strcmp(key, "labels") == 0) {
            if ((rc = parse_labels(f, v, err, errlen)) < 0)
                return rc;
        } else if (strcmp(key, "reconcile_period") == 0) {
            long long ns;
            if (bt_node_duration(v, &ns) < 0 || ns < BT_NS_PER_SEC)
                return cfg_err(err, errlen, v, "%s", "reconcile_period must be a duration >= 1s");
            f->reconcile_ns = ns;
        } else
            return cfg_err(err, errlen, k, "unknown key \"%s\"", key);
    }
    f->rules = calloc(FIM_MAX_RULES, sizeof(*f->rules));
    if (!f->rules)
        return -ENOMEM;
    if (paths || ops) {
        if ((rc = parse_rule(f, cfg, paths, ops, err, errlen)) < 0)
            return rc;
    }
    if (rules) {
        if (rules->type != BT_NODE_SEQ)
            return cfg_err(err, errlen, rules, "%s", "rules must be a list");
        for (size_t i = 0; i < rules->n; i++) {
            const struct bt_node *r = rules->items[i];
            if (r->type != BT_NODE_MAP)
                return cfg_err(err, errlen, r, "%s", "a rule must be a map");
            for (size_t j = 0; j < r->n; j++) {
                const struct bt_node *k = bt_node_key(r, j);
                if (k->type != BT_NODE_SCALAR ||
                    (strcmp(k->str, "paths") != 0 && strcmp(k->str, "ops") != 0))
                    return cfg_err(err, errlen, k, "unknown key \"%s\" in a rule",
                                   k->type == BT_NODE_SCALAR ? k->str : "?");
            }
            rc = parse_rule(f, r, bt_node_get(r, "paths"), bt_node_get(r, "ops"), err, errlen);
            if (rc < 0)
                return rc;
        }
    }
    if (f->n_rules == 0)
        return cfg_err(err, errlen, cfg, "%s", "no paths to watch (set `rules` or `paths`)");
    if (!host) {
        if (gethostname(hostbuf, sizeof(hostbuf)) < 0)
            snprintf(hostbuf, sizeof(hostbuf), "unknown");
        hostbuf[sizeof(hostbuf) - 1] = '\0';
        host = hostbuf;
    }
    if (bt_labels_set(&f->base, "job", job) < 0 || bt_labels_set(&f->base, "host", host) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- resolution: rules -> watched files and directories ---- */

static void dir_keep(struct bt_fim *f, const char *path)
{
    unsigned *gen = bt_hmap_get(&f->dirs, path, strlen(path));

    if (gen) {
        *gen = f->gen;
        return;
    }
    if (bt_watch_bpf_set_ops(&f->w, f->all_ops | FIM_RECONCILE_OPS | BT_FE_EVERY_WRITE) < 0 ||
        f->w.ops->add_dir(&f->w, path, 0, 0) < 0)
        return; /* not there (yet): the next pass tries again */
    gen = malloc(sizeof(*gen));
    if (!gen)
        return;
    *gen = f->gen;
    if (bt_hmap_put(&f->dirs, path, strlen(path), gen, NULL) < 0) {
        f->w.ops->remove_dir(&f->w, path);
        free(gen);
    }
}

static void file_keep(struct bt_fim *f, const char *path, const struct stat *st)
{
    struct fim_key k = {.dev = st->st_dev, .ino = st->st_ino};
    struct fim_file *ff = bt_hmap_get(&f->files, &k, sizeof(k));

    if (ff) {
        ff->gen = f->gen;
        return;
    }
    if (f->files.n >= FIM_MAX_FILES)
        return;
    ff = calloc(1, sizeof(*ff));
    if (!ff || !(ff->path = strdup(path)))
        goto fail;
    ff->dev = st->st_dev;
    ff->ino = st->st_ino;
    ff->gen = f->gen;
    if (bt_watch_bpf_set_ops(&f->w, f->all_ops | FIM_RECONCILE_OPS | BT_FE_EVERY_WRITE) < 0 ||
        f->w.ops->add_file(&f->w, path, st->st_dev, st->st_ino) < 0)
        goto fail;
    if (bt_hmap_put(&f->files, &k, sizeof(k), ff, NULL) < 0) {
        f->w.ops->remove_file(&f->w, st->st_dev, st->st_ino);
        goto fail;
    }
    return;
fail:
    if (ff)
        free(ff->path);
    free(ff);
}

/* The directory part of an absolute path into out ("/" for "/x"). */
static void dirname_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash && slash != path ? (size_t)(slash - path) : 1;

    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, path, n);
    out[n] = '\0';
}

static void resolve_rule(struct bt_fim *f, const struct fim_rule *r)
{
    char dir[PATH_MAX];
    struct stat st;
    glob_t g;

    if (r->is_dir) {
        dir_keep(f, r->pattern);
        return;
    }
    dirname_of(r->pattern, dir, sizeof(dir));
    if (!r->has_glob) {
        if (stat(r->pattern, &st) == 0 && S_ISREG(st.st_mode))
            file_keep(f, r->pattern, &st);
        else
            dir_keep(f, dir); /* to see it appear */
        return;
    }
    if (glob(r->pattern, GLOB_NOSORT, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            if (stat(g.gl_pathv[i], &st) == 0 && S_ISREG(st.st_mode))
                file_keep(f, g.gl_pathv[i], &st);
        globfree(&g);
    }
    /* The directories the glob's files live in, to see new matches appear. */
    if (!has_glob(dir)) {
        dir_keep(f, dir);
    } else if (glob(dir, GLOB_NOSORT | GLOB_ONLYDIR, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            dir_keep(f, g.gl_pathv[i]);
        globfree(&g);
    }
}

/* Whether some later name of ff still names its inode; drops the names that do not. */
static int alias_alive(struct bt_fim *f, const struct fim_file *ff)
{
    struct fim_key k = {.dev = ff->dev, .ino = ff->ino};
    struct bt_hmap_slot *s;
    size_t pos = 0;
    int alive = 0;

    while ((s = bt_hmap_next(&f->alias, &pos))) {
        struct stat st;
        if (memcmp(s->val, &k, sizeof(k)) != 0)
            continue;
        if (stat(s->key, &st) == 0 && st.st_dev == ff->dev && st.st_ino == ff->ino) {
            alive = 1;
            continue;
        }
        bt_watch_bpf_remove_alias(&f->w, s->key, ff->dev, ff->ino);
        free(bt_hmap_del(&f->alias, s->key, s->klen));
    }
    return alive;
}

/* A watched file was renamed or hard-linked to newpath: watch that name too, so that what is
 * done under it (chmod, rename, unlink by path) is reported under the watched path. */
static void alias_add(struct bt_fim *f, const char *newpath)
{
    struct stat st;
    struct fim_key k, *box, *old = NULL;

    if (!newpath || newpath[0] != '/' || stat(newpath, &st) < 0)
        return;
    k.dev = st.st_dev;
    k.ino = st.st_ino;
    if (!bt_hmap_get(&f->files, &k, sizeof(k)))
        return; /* not a file we watch */
    if (bt_watch_bpf_add_alias(&f->w, newpath, st.st_dev, st.st_ino) < 0)
        return;
    box = malloc(sizeof(*box));
    if (!box)
        return;
    *box = k;
    if (bt_hmap_put(&f->alias, newpath, strlen(newpath), box, (void **)&old) < 0)
        free(box);
    free(old);
}

/* Drops the later names that no longer name their file (unlinked, renamed, replaced), also
 * while the watched path is still there: a new file at such a name is not the watched one. */
static void alias_prune(struct bt_fim *f)
{
    struct bt_hmap_slot *s;
    size_t pos = 0;

    while ((s = bt_hmap_next(&f->alias, &pos))) {
        const struct fim_key *k = s->val;
        struct stat st;
        if (stat(s->key, &st) == 0 && st.st_dev == k->dev && st.st_ino == k->ino)
            continue;
        bt_watch_bpf_remove_alias(&f->w, s->key, k->dev, k->ino);
        free(bt_hmap_del(&f->alias, s->key, s->klen));
    }
}

int bt_fim_reconcile(struct bt_fim *f)
{
    struct bt_hmap_slot *s;
    size_t pos = 0;

    if (!f || !f->have_bpf)
        return f ? 0 : -EINVAL;
    f->need_reconcile = 0;
    f->gen++;
    for (size_t i = 0; i < f->n_rules; i++)
        resolve_rule(f, &f->rules[i]);
    alias_prune(f);
    while ((s = bt_hmap_next(&f->files, &pos))) {
        struct fim_file *ff = s->val;
        struct stat st;
        /* Same inode still at its path, or gone: drop what the latest pass did not see. */
        if (ff->gen == f->gen)
            continue;
        if (stat(ff->path, &st) == 0 && st.st_dev == ff->dev && st.st_ino == ff->ino)
            continue;
        if (alias_alive(f, ff))
            continue; /* renamed: followed under its new name until the inode is gone */
        f->w.ops->remove_file(&f->w, ff->dev, ff->ino);
        bt_hmap_del(&f->files, s->key, s->klen);
        free(ff->path);
        free(ff);
    }
    pos = 0;
    while ((s = bt_hmap_next(&f->alias, &pos)))
        if (!bt_hmap_get(&f->files, s->val, sizeof(struct fim_key)))
            free(bt_hmap_del(&f->alias, s->key, s->klen));
    pos = 0;
    while ((s = bt_hmap_next(&f->dirs, &pos))) {
        unsigned *gen = s->val;
        if (*gen == f->gen)
            continue;
        f->w.ops->remove_dir(&f->w, s->key);
        free(bt_hmap_del(&f->dirs, s->key, s->klen));
    }
    return 0;
}

size_t bt_fim_watched_files(const struct bt_fim *f)
{
    return f ? f->files.n : 0;
}

/* ---- events -> entries ---- */

static int rule_match(const struct fim_rule *r, const char *path)
{
    size_t n;

    if (!path)
        return 0;
    if (r->is_dir) {
        n = strlen(r->pattern);
        if (strcmp(path, r->pattern) == 0)
            return 1;
        if (n == 1)
            n = 0; /* "/" */
        return strncmp(path, r->pattern, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/');
    }
    return fnmatch(r->pattern, path, FNM_PATHNAME) == 0;
}

/* Appends key=value in logfmt. A failed append empties the buffer: callers check the result. */
static int kv(struct bt_buf *b, const char *key, const char *val)
{
    char q[PATH_MAX + 64];

    if (!val || !*val)
        return 0;
    return bt_buf_addf(b, "%s%s=%s", b->len ? " " : "", key, bt_logq(q, sizeof(q), val));
}

static int kvu(struct bt_buf *b, const char *key, unsigned long long v)
{
    return bt_buf_addf(b, "%s%s=%llu", b->len ? " " : "", key, v);
}

/* Copies the first run of exactly 64 lowercase hex digits in s (a container id) to out
 * (at least 65 bytes). Returns 1 if found. */
static int hex64(const char *s, char *out)
{
    int run = 0;

    for (const char *p = s;; p++) {
        if ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')) {
            run++;
            continue;
        }
        if (run == 64) {
            memcpy(out, p - 64, 64);
            out[64] = '\0';
            return 1;
        }
        if (!*p)
            return 0;
        run = 0;
    }
}

/* The container id of the event's process: from the cgroup v2 leaf name the kernel sent
 * (docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>, libpod-<id>, or <id>), else from
 * /proc/<pid>/cgroup (cgroup v1 hosts), if the process still exists. */
static void container_id(uint32_t pid, const char *leaf, char *out)
{
    char path[64], buf[4096];
    ssize_t n;
    int fd;

    out[0] = '\0';
    if (leaf && hex64(leaf, out))
        return;
    snprintf(path, sizeof(path), "/proc/%u/cgroup", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    hex64(buf, out);
}

/* The executable: the full path the kernel built (see docs/bpf.md). Only when it is cut at
 * FE_EXE_LEN or missing, /proc/<pid>/exe if the process is still there and its name matches
 * what the kernel saw (pids are reused), else what the kernel sent. */
static const char *exe_of(uint32_t pid, const char *kname, char *out, size_t outlen)
{
    char proc[64];
    const char *base;
    ssize_t n;

    if (kname && kname[0] == '/' && strlen(kname) < 255)
        return kname;
    snprintf(proc, sizeof(proc), "/proc/%u/exe", pid);
    n = readlink(proc, out, outlen - 1);
    if (n <= 0)
        return kname;
    out[n] = '\0';
    base = strrchr(out, '/');
    base = base ? base + 1 : out;
    if (kname && *kname) {
        const char *kb = strrchr(kname, '/');
        kb = kb ? kb + 1 : kname;
        if (strncmp(base, kb, strlen(kb)) != 0)
            return kname;
    }
    return out;
}

static void emit(struct bt_fim *f, const struct bt_watch_event *ev,
                 const struct bt_watch_bpf_info *info, const char *path, const char *newpath,
                 const char *via)
{
    struct bt_entry e = {0};
    char exebuf[PATH_MAX], cid[80], devs[32];
    const char *exe;
    const char *base = strrchr(path, '/');
    uint32_t op = info->op == BT_FE_DIRTY ? BT_FE_WRITE : info->op; /* reported as a write */
    int rc = 0;

    if (bt_labels_copy(&f->lbl, &f->base) < 0 ||
        bt_labels_set(&f->lbl, "op", bt_fe_op_name(op)) < 0)
        return;
    exe = exe_of(ev->tgid, info->exe, exebuf, sizeof(exebuf));
    container_id(ev->tgid, info->cgroup, cid);
    bt_buf_reset(&f->line);
    rc |= kv(&f->line, "op", bt_fe_op_name(op));
    rc |= kv(&f->line, "path", path);
    rc |= kv(&f->line, "new_path", newpath);
    if (via)
        rc |= kv(&f->line, "via", via); /* a later name of the watched file */
    else if (info->name && info->name[0] && info->name[0] != '/' && base &&
             strcmp(base + 1, info->name) != 0)
        rc |= kv(&f->line, "via", info->name); /* another name of the inode: a hard link */
    if (ev->ino) {
        rc |= kvu(&f->line, "inode", (unsigned long long)ev->ino);
        snprintf(devs, sizeof(devs), "%u:%u", major(ev->dev), minor(ev->dev));
        rc |= kv(&f->line, "dev", devs);
    }
    if (info->op == BT_FE_WRITE)
        rc |= kvu(&f->line, "bytes", (unsigned long long)info->ret);
    if (info->op == BT_FE_DIRTY)
        rc |= info->flags == UINT32_MAX ? kv(&f->line, "source", "mmap")
                                        : kvu(&f->line, "syscall", info->flags);
    if (info->op == BT_FE_OPEN)
        rc |= kv(&f->line, "access",
                 (info->flags & O_ACCMODE) == O_RDONLY   ? "read"
                 : (info->flags & O_ACCMODE) == O_WRONLY ? "write"
                                                         : "read_write");
    rc |= kvu(&f->line, "pid", ev->tgid);
    if (ev->pid != ev->tgid)
        rc |= kvu(&f->line, "tid", ev->pid);
    rc |= kvu(&f->line, "ppid", ev->ppid);
    rc |= kvu(&f->line, "uid", ev->uid);
    rc |= kvu(&f->line, "gid", info->gid);
    rc |= kv(&f->line, "comm", ev->comm);
    rc |= kv(&f->line, "exe", exe);
    rc |= kvu(&f->line, "cgroup_id", (unsigned long long)ev->cgroup_id);
    rc |= kv(&f->line, "cgroup", info->cgroup);
    rc |= kv(&f->line, "container_id", cid);
    if (rc != 0 || f->line.len == 0) {
        bt_counter_inc(f->too_long);
        return;
    }
    e.labels = &f->lbl;
    e.ts_ns = info->ts_ns;
    e.line = f->line.ptr;
    e.line_len = f->line.len;
    f->sink(f->ctx, &e);
    if (op < BT_FE_OP_MAX) {
        if (!f->ev_series[op] && f->m) {
            char lbl[64];
            snprintf(lbl, sizeof(lbl), "op=\"%s\"", bt_fe_op_name(op));
            f->ev_series[op] =
                bt_metrics_counter(f->m, "bpftail_fim_events_total",
                                   "File-integrity events shipped, by operation.", lbl);
        }
        bt_counter_inc(f->ev_series[op]);
    }
}

static void on_event(void *ctx, const struct bt_watch_event *ev)
{
    struct bt_fim *f = ctx;
    const struct bt_watch_bpf_info *info = bt_watch_bpf_current(&f->w);
    char newbuf[PATH_MAX];
    const char *newpath = NULL, *path, *via = NULL;
    const struct fim_key *ak;
    uint32_t want;
    int hit = 0;

    if (ev->mask & BT_WATCH_OVERFLOW) {
        bt_counter_inc(f->lost);
        f->need_reconcile = 1;
        return;
    }
    if (!info || !info->path || info->rename_new)
        return;
    /* A later name of a watched file: report under the watched path. */
    path = info->path;
    ak = bt_hmap_get(&f->alias, info->path, strlen(info->path));
    if (ak) {
        const struct fim_file *ff = bt_hmap_get(&f->files, ak, sizeof(*ak));
        if (ff) {
            via = info->path;
            path = ff->path;
        }
    }
    if (info->op == BT_FE_CREATE || info->op == BT_FE_RENAME || info->op == BT_FE_UNLINK ||
        info->op == BT_FE_RMDIR || info->op == BT_FE_LINK)
        f->need_reconcile = 1;
    if ((info->op == BT_FE_RENAME || info->op == BT_FE_LINK) && info->name2[0]) {
        if (info->name2[0] == '/')
            newpath = info->name2;
        else if (ev->dir && !strchr(info->name2, '/') &&
                 snprintf(newbuf, sizeof(newbuf), "%s/%s", ev->dir, info->name2) <
                     (int)sizeof(newbuf))
            newpath = newbuf;
    }
    want = BT_FE_OPBIT(info->op);
    if (info->op == BT_FE_OPEN && (info->flags & O_ACCMODE) != O_WRONLY)
        want |= FIM_READ;
    for (size_t i = 0; i < f->n_rules && !hit; i++) {
        const struct fim_rule *r = &f->rules[i];
        if (!(r->ops & want))
            continue;
        hit = rule_match(r, path) || rule_match(r, newpath);
    }
    if (hit)
        emit(f, ev, info, path, newpath, via);
    if (info->op == BT_FE_RENAME || info->op == BT_FE_LINK)
        alias_add(f, newpath);
}

static void on_io(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    struct bt_fim *f = arg;

    (void)l;
    (void)fd;
    (void)events;
    f->w.ops->dispatch(&f->w);
    if (f->need_reconcile)
        bt_fim_reconcile(f);
}

static void on_timer(struct bt_loop *l, uint64_t id, void *arg)
{
    (void)l;
    (void)id;
    bt_fim_reconcile(arg);
}

/* The watch is open: resolve the rules and listen. 0 or -errno with err set. */
static int fim_start(struct bt_fim *f, char *err, size_t errlen)
{
    int rc;

    f->have_bpf = 1;
    bt_watch_bpf_ignore_tgid(&f->w, (uint32_t)getpid());
    bt_fim_reconcile(f);
    rc = bt_loop_add_fd(f->loop, f->w.ops->fd(&f->w), EPOLLIN, on_io, f);
    if (rc < 0) {
        snprintf(err, errlen, "fim: cannot watch the event fd: %s", strerror(-rc));
        return rc;
    }
    f->fd_added = 1;
    f->timer = bt_loop_add_timer(f->loop, f->reconcile_ns, f->reconcile_ns, on_timer, f);
    BT_INFO("fim", "file-integrity monitoring started", "backend=bpf rules=%zu files=%zu",
            f->n_rules, f->files.n);
    return 0;
}

/* The background BPF load finished (bt_watch_bpf_when_loaded): start, or say why not. */
static void on_bpf_loaded(void *ctx, int rc)
{
    struct bt_fim *f = ctx;
    char err[256] = "";

    f->waiting = 0;
    if (rc == 0)
        rc = f->w.ops->open(&f->w);
    if (rc < 0)
        BT_WARN("fim", "file-integrity monitoring disabled: it needs BPF", "rules=%zu err=%d",
                f->n_rules, rc);
    else if (fim_start(f, err, sizeof(err)) < 0)
        BT_ERROR("fim", "file-integrity monitoring could not start", "err=%s", err);
    if (f->m)
        bt_gauge_set(bt_metrics_gauge(f->m, "bpftail_fim_backend_info",
                                      "File-integrity backend in use (1).",
                                      f->have_bpf ? "backend=\"bpf\"" : "backend=\"none\""),
                     1);
}

struct bt_fim *bt_fim_new(const struct bt_node *fim_cfg, struct bt_loop *loop, struct bt_metrics *m,
                          bt_entry_sink_fn sink, void *ctx, char *err, size_t errlen)
{
    struct bt_fim *f;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (!fim_cfg || bt_node_is_null(fim_cfg))
        return NULL;
    f = calloc(1, sizeof(*f));
    if (!f) {
        snprintf(err, errlen, "fim: out of memory");
        return NULL;
    }
    f->loop = loop;
    f->sink = sink;
    f->ctx = ctx;
    f->m = m;
    f->reconcile_ns = 60 * BT_NS_PER_SEC;
    bt_labels_init(&f->base);
    bt_labels_init(&f->lbl);
    bt_buf_init(&f->line, FIM_LINE_MAX);
    bt_hmap_init(&f->files);
    bt_hmap_init(&f->dirs);
    bt_hmap_init(&f->alias);
    rc = parse_config(f, fim_cfg, err, errlen);
    if (rc < 0) {
        if (rc == -ENOMEM)
            snprintf(err, errlen, "fim: out of memory");
        goto fail;
    }
    if (m)
        f->lost = bt_metrics_counter(m, "bpftail_fim_events_lost_total",
                                     "File-integrity events lost in the kernel ring buffer.", "");
    if (m)
        f->too_long = bt_metrics_counter(m, "bpftail_fim_events_dropped_total",
                                         "File-integrity events dropped: line over 8 KiB.", "");
    f->w.ops = &bt_watch_bpf_ops;
    f->w.fn = on_event;
    f->w.ctx = f;
    if (!loop) {
        /* Validation only (-check-syntax): nothing is loaded. */
    } else if ((rc = f->w.ops->open(&f->w)) == -EINPROGRESS &&
               bt_watch_bpf_when_loaded(on_bpf_loaded, f) == 0) {
        f->waiting = 1; /* starts when the background load is done */
        BT_INFO("fim", "file-integrity monitoring waits for the BPF programs", "rules=%zu",
                f->n_rules);
        return f;
    } else if (rc < 0) {
        BT_WARN("fim", "file-integrity monitoring disabled: it needs BPF", "rules=%zu", f->n_rules);
    } else if (fim_start(f, err, errlen) < 0) {
        goto fail;
    }
    if (m)
        bt_gauge_set(bt_metrics_gauge(m, "bpftail_fim_backend_info",
                                      "File-integrity backend in use (1).",
                                      f->have_bpf ? "backend=\"bpf\"" : "backend=\"none\""),
                     1);
    return f;
fail:
    bt_fim_free(f);
    return NULL;
}

void bt_fim_free(struct bt_fim *f)
{
    struct bt_hmap_slot *s;
    size_t pos = 0;

    if (!f)
        return;
    if (f->fd_added)
        bt_loop_del_fd(f->loop, f->w.ops->fd(&f->w));
    if (f->timer)
        bt_loop_del_timer(f->loop, f->timer);
    if (f->have_bpf)
        f->w.ops->close(&f->w);
    while ((s = bt_hmap_next(&f->files, &pos))) {
        struct fim_file *ff = s->val;
        free(ff->path);
        free(ff);
    }
    bt_hmap_free(&f->files);
    pos = 0;
    while ((s = bt_hmap_next(&f->dirs, &pos)))
        free(s->val);
    bt_hmap_free(&f->dirs);
    pos = 0;
    while ((s = bt_hmap_next(&f->alias, &pos)))
        free(s->val);
    bt_hmap_free(&f->alias);
    for (size_t i = 0; f->rules && i < f->n_rules; i++)
        free(f->rules[i].pattern);
    free(f->rules);
    bt_labels_free(&f->base);
    bt_labels_free(&f->lbl);
    bt_buf_free(&f->line);
    free(f);
}

const char *bt_fim_backend(const struct bt_fim *f)
{
    if (f && f->waiting)
        return "starting";
    return f && f->have_bpf ? "bpf" : "none";
}
