/*
 * watch_bpf: the BPF watcher backend (struct bt_watch_ops "bpf").
 *
 * Loads bpf/file_events.bpf.c through its generated skeleton, keeps the kernel's watched
 * sets (inodes, paths) in step with add/remove calls, and turns ring-buffer records into
 * bt_watch events. The only file that includes libbpf. Tables in user space map kernel keys
 * back to the paths callers registered:
 *   inodes  {kernel dev, ino} -> struct ino_ent (file or directory, its path, its ops)
 *   paths   path -> struct path_ent (reference counts: a rotated file's old and new inode
 *           share a path; the kernel's watched_paths entry lives while either is watched)
 */
#include "watch_bpf.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "caps.h"
#include "file_events.h"
#include "file_events.skel.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"

_Static_assert((int)BT_FE_WRITE == (int)FE_OP_WRITE && (int)BT_FE_CHOWN == (int)FE_OP_CHOWN &&
                   (int)BT_FE_OP_MAX == (int)FE_OP_MAX && BT_FE_OPS_TAIL == FE_OPS_TAIL,
               "watch_bpf.h and bpf/file_events.h disagree");

#define PATH_CAP 4096

struct ino_ent {
    struct fe_key key;
    uint32_t kind; /* FE_W_FILE or FE_W_DIR */
    uint32_t ops;
    char *path; /* owned; NULL if registered without one */
};

struct path_ent {
    int file_refs, dir_refs;
    uint32_t file_ops, dir_ops;
    struct fe_key dir_key; /* the directory registered under this path */
};

struct bpfw {
    struct file_events_bpf *skel;
    struct ring_buffer *rb;
    struct bt_watch *w;
    struct bt_hmap inodes;
    struct bt_hmap paths;
    uint32_t ops;
    uint64_t drops_seen;
    int64_t mono_to_wall;
    const struct bt_watch_bpf_info *cur;
    int no_dirty_hook;  /* loaded without the page-cache write hook */
    struct fe_event ev; /* the record being delivered */
    char dirbuf[PATH_CAP];
    char pathbuf[PATH_CAP];
};

static int g_refuse;
static uint32_t g_ring_size;

void bt_watch_bpf_set_ring_size(uint32_t bytes)
{
    g_ring_size = bytes;
}

void bt_watch_bpf_refuse(int err)
{
    g_refuse = err;
}

static struct bpfw *impl(const struct bt_watch *w)
{
    if (!w || w->ops != &bt_watch_bpf_ops)
        return NULL;
    return w->impl;
}

static uint32_t kdev(dev_t d)
{
    return (uint32_t)(major(d) << 20 | minor(d));
}

static dev_t udev(uint32_t k)
{
    return makedev(k >> 20, k & 0xfffff);
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = FE_FNV_OFFSET;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= FE_FNV_PRIME;
    }
    return h;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    if (level == LIBBPF_DEBUG || bt_log_get_level() > BT_LOG_DEBUG)
        return 0;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    bt_log(BT_LOG_DEBUG, "libbpf", msg, NULL);
    return 0;
}

/* Writes the kernel's watched_paths entry for path from its reference counts. */
static int path_sync(struct bpfw *b, const char *path, const struct path_ent *pe)
{
    size_t len = strlen(path);
    struct fe_watch v = {0};
    uint64_t h;
    int fd = bpf_map__fd(b->skel->maps.watched_paths);

    if (len > 1 && path[len - 1] == '/')
        len--;
    if (len == 1 && path[0] == '/')
        len = 0; /* the kernel hashes "" as the directory part of "/name" */
    h = fnv1a(path, len);
    if (pe->file_refs > 0) {
        v.kind |= FE_W_FILE;
        v.ops |= pe->file_ops;
    }
    if (pe->dir_refs > 0) {
        v.kind |= FE_W_DIR;
        v.ops |= pe->dir_ops;
    }
    if (v.kind == 0) {
        if (bpf_map_delete_elem(fd, &h) < 0 && errno != ENOENT)
            return -errno;
        return 0;
    }
    if (bpf_map_update_elem(fd, &h, &v, BPF_ANY) < 0)
        return -errno;
    return 0;
}

/* Adds (delta > 0) or drops a reference of one kind on path. */
static int path_ref(struct bpfw *b, const char *path, uint32_t kind, int delta, uint32_t ops,
                    const struct fe_key *dir_key)
{
    struct path_ent *pe = bt_hmap_get(&b->paths, path, strlen(path));
    int rc;

    if (!pe) {
        if (delta < 0)
            return 0;
        pe = calloc(1, sizeof(*pe));
        if (!pe)
            return -ENOMEM;
        rc = bt_hmap_put(&b->paths, path, strlen(path), pe, NULL);
        if (rc < 0) {
            free(pe);
            return rc;
        }
    }
    if (kind == FE_W_FILE) {
        pe->file_refs += delta;
        if (delta > 0)
            pe->file_ops |= ops;
    } else {
        pe->dir_refs += delta;
        if (delta > 0) {
            pe->dir_ops |= ops;
            pe->dir_key = *dir_key;
        }
    }
    rc = path_sync(b, path, pe);
    if (pe->file_refs <= 0 && pe->dir_refs <= 0)
        free(bt_hmap_del(&b->paths, path, strlen(path)));
    return rc;
}

static void ino_free(struct bpfw *b, struct ino_ent *ie)
{
    if (ie->path)
        path_ref(b, ie->path, ie->kind, -1, 0, NULL);
    free(ie->path);
    free(ie);
}

static int ino_add(struct bpfw *b, uint32_t kind, const char *path, dev_t dev, ino_t ino)
{
    struct fe_watch v = {.kind = kind, .ops = b->ops};
    struct ino_ent *ie = NULL, *old = NULL;
    struct stat st;
    int rc;

    if (dev == 0 && ino == 0) {
        if (!path)
            return -EINVAL;
        if (stat(path, &st) < 0)
            return -errno;
        dev = st.st_dev;
        ino = st.st_ino;
    }
    ie = calloc(1, sizeof(*ie));
    if (!ie)
        return -ENOMEM;
    ie->key.ino = ino;
    ie->key.dev = kdev(dev);
    ie->kind = kind;
    ie->ops = b->ops;
    if (path) {
        ie->path = strdup(path);
        if (!ie->path) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    if (bpf_map_update_elem(bpf_map__fd(b->skel->maps.watched_inodes), &ie->key, &v, BPF_ANY) < 0) {
        rc = -errno;
        goto fail;
    }
    if (path) {
        rc = path_ref(b, path, kind, 1, b->ops, &ie->key);
        if (rc < 0)
            goto fail;
    }
    rc = bt_hmap_put(&b->inodes, &ie->key, sizeof(ie->key), ie, (void **)&old);
    if (rc < 0) {
        path_ref(b, path, kind, -1, 0, NULL);
        goto fail;
    }
    if (old)
        ino_free(b, old);
    if (b->ops & FE_OPBIT(FE_OP_OPEN))
        b->skel->bss->want_open = 1;
    return 0;
fail:
    free(ie->path);
    free(ie);
    return rc;
}

static int ino_remove(struct bpfw *b, const struct fe_key *key)
{
    struct ino_ent *ie = bt_hmap_del(&b->inodes, key, sizeof(*key));

    if (!ie)
        return -ENOENT;
    if (bpf_map_delete_elem(bpf_map__fd(b->skel->maps.watched_inodes), key) < 0 && errno != ENOENT)
        BT_WARN("watch", "bpf: removing an inode from the kernel set failed", "ino=%llu err=%d",
                (unsigned long long)key->ino, -errno);
    ino_free(b, ie);
    return 0;
}

static const struct ino_ent *ino_find(struct bpfw *b, uint32_t dev, uint64_t ino, uint32_t kind)
{
    struct fe_key k = {.ino = ino, .dev = dev, .pad = 0};
    const struct ino_ent *ie = bt_hmap_get(&b->inodes, &k, sizeof(k));

    return ie && ie->kind == kind ? ie : NULL;
}

static uint32_t op_mask(uint32_t op)
{
    switch (op) {
    case FE_OP_WRITE:
    case FE_OP_DIRTY: return BT_WATCH_MODIFY;
    case FE_OP_CREATE: return BT_WATCH_CREATE;
    case FE_OP_TRUNCATE: return BT_WATCH_TRUNCATE;
    case FE_OP_RENAME: return BT_WATCH_MOVED;
    case FE_OP_UNLINK:
    case FE_OP_RMDIR: return BT_WATCH_DELETE;
    case FE_OP_CLOSE_WRITE: return BT_WATCH_CLOSE;
    case FE_OP_OPEN: return BT_WATCH_OPEN;
    default: return BT_WATCH_ATTRIB;
    }
}

static const char *join(char *out, size_t outlen, const char *dir, const char *name)
{
    int n = snprintf(out, outlen, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);

    return n > 0 && (size_t)n < outlen ? out : NULL;
}

/* Delivers one event about a name given as a path argument. Returns 1 if delivered. */
static int deliver_name(struct bpfw *b, struct bt_watch_event *ev, struct bt_watch_bpf_info *info,
                        const struct fe_event *e, const char *name)
{
    const struct ino_ent *dir;
    const char *slash = strrchr(name, '/');

    if (name[0] == '/') {
        size_t dl = (size_t)(slash - name);
        if (dl >= sizeof(b->dirbuf))
            return 0;
        memcpy(b->dirbuf, name, dl ? dl : 1);
        b->dirbuf[dl ? dl : 1] = '\0';
        ev->dir = b->dirbuf;
        ev->name = slash + 1;
        info->path = name;
    } else if (!slash && e->pino) {
        dir = ino_find(b, e->dev, e->pino, FE_W_DIR);
        if (!dir || !dir->path)
            return 0;
        ev->dir = dir->path;
        ev->name = name;
        info->path = join(b->pathbuf, sizeof(b->pathbuf), dir->path, name);
    } else {
        return 0;
    }
    b->cur = info;
    b->w->fn(b->w->ctx, ev);
    b->cur = NULL;
    b->w->events++;
    return 1;
}

static int on_event(void *ctx, void *data, size_t size)
{
    struct bpfw *b = ctx;
    struct fe_event *e = &b->ev;
    struct bt_watch_event ev = {0};
    struct bt_watch_bpf_info info = {0};
    const struct ino_ent *file, *dir;
    char comm[FE_COMM_LEN + 1];
    int delivered;

    if (size < sizeof(*e))
        return 0;
    /* The record is read-only shared memory: copy it, then make sure the names end. */
    memcpy(e, data, sizeof(*e));
    e->name[FE_NAME_MAX - 1] = '\0';
    e->name2[FE_NAME_MAX - 1] = '\0';
    memcpy(comm, e->comm, FE_COMM_LEN);
    comm[FE_COMM_LEN] = '\0';
    ev.mask = op_mask(e->op);
    ev.pid = e->pid;
    ev.tgid = e->tgid;
    ev.ppid = e->ppid;
    ev.uid = e->uid;
    ev.cgroup_id = e->cgroup_id;
    ev.comm = comm;
    info.ts_ns = (int64_t)e->ts_ns + b->mono_to_wall;
    info.op = e->op;
    info.match = e->match;
    info.ret = e->ret;
    info.flags = e->flags;
    info.gid = e->gid;
    info.pino = e->pino;
    info.name = e->name;
    info.name2 = e->name2;

    if (e->ino) {
        /* fd-based: the kernel resolved the file itself. */
        ev.dev = udev(e->dev);
        ev.ino = e->ino;
        file = ino_find(b, e->dev, e->ino, FE_W_FILE);
        dir = (e->match & FE_M_PARENT) ? ino_find(b, e->dev, e->pino, FE_W_DIR) : NULL;
        if (dir && dir->path) {
            ev.dir = dir->path;
            ev.name = e->name;
        }
        if (file && file->path)
            info.path = file->path;
        else if (dir && dir->path)
            info.path = join(b->pathbuf, sizeof(b->pathbuf), dir->path, e->name);
        b->cur = &info;
        b->w->fn(b->w->ctx, &ev);
        b->cur = NULL;
        b->w->events++;
        return 0;
    }
    /* Path-based: one event per name (a rename tells about both). */
    delivered = deliver_name(b, &ev, &info, e, e->name);
    if (e->op == FE_OP_RENAME && e->name2[0]) {
        struct bt_watch_event ev2 = ev;
        struct bt_watch_bpf_info info2 = info;
        info2.rename_new = delivered;
        deliver_name(b, &ev2, &info2, e, e->name2);
    }
    return 0;
}

static int read_stats(struct bpfw *b, uint64_t *events, uint64_t *drops)
{
    int ncpu = libbpf_num_possible_cpus();
    int fd = bpf_map__fd(b->skel->maps.stats);
    uint64_t sum[FE_STAT_MAX] = {0};
    uint64_t *vals;
    int rc = 0;

    if (ncpu <= 0)
        return ncpu < 0 ? ncpu : -EINVAL;
    vals = calloc((size_t)ncpu, sizeof(*vals));
    if (!vals)
        return -ENOMEM;
    for (uint32_t k = 0; k < FE_STAT_MAX; k++) {
        if (bpf_map_lookup_elem(fd, &k, vals) < 0) {
            rc = -errno;
            goto out;
        }
        for (int i = 0; i < ncpu; i++)
            sum[k] += vals[i];
    }
    if (events)
        *events = sum[FE_STAT_EVENTS];
    if (drops)
        *drops = sum[FE_STAT_DROPS];
out:
    free(vals);
    return rc;
}

#define DETACH_THREADS 8

struct detach_job {
    struct bpf_object_skeleton *s;
    int first;
};

static void *detach_some(void *arg)
{
    struct detach_job *j = arg;

    for (int i = j->first; i < j->s->prog_cnt; i += DETACH_THREADS) {
        struct bpf_link **link = j->s->progs[i].link;
        bpf_link__destroy(*link);
        *link = NULL;
    }
    return NULL;
}

/* Detaching a tracepoint waits for an RCU grace period: 3.4 s for all programs in a row on
 * the test VM, 1.9 s when the links are destroyed from 8 threads (more threads gain nothing:
 * part of the work is serialised in the kernel). Falls back to serial if threads fail. */
static void detach_all(struct file_events_bpf *skel)
{
    struct detach_job jobs[DETACH_THREADS];
    pthread_t th[DETACH_THREADS];
    int started[DETACH_THREADS] = {0};

    if (!skel || !skel->skeleton)
        return;
    for (int t = 0; t < DETACH_THREADS; t++) {
        jobs[t].s = skel->skeleton;
        jobs[t].first = t;
        started[t] = pthread_create(&th[t], NULL, detach_some, &jobs[t]) == 0;
    }
    for (int t = 0; t < DETACH_THREADS; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            detach_some(&jobs[t]);
    }
}

static void bpfw_free(struct bpfw *b)
{
    struct bt_hmap_slot *s;
    size_t pos = 0;

    if (!b)
        return;
    ring_buffer__free(b->rb);
    detach_all(b->skel);
    file_events_bpf__destroy(b->skel);
    while ((s = bt_hmap_next(&b->inodes, &pos))) {
        struct ino_ent *ie = s->val;
        free(ie->path);
        free(ie);
    }
    bt_hmap_free(&b->inodes);
    pos = 0;
    while ((s = bt_hmap_next(&b->paths, &pos)))
        free(s->val);
    bt_hmap_free(&b->paths);
    free(b);
}

/* Syscall tracepoints are attached by id, read from tracefs. Mounts it when nobody has. */
static int ensure_tracefs(void)
{
    if (access("/sys/kernel/tracing/events/syscalls", F_OK) == 0 ||
        access("/sys/kernel/debug/tracing/events/syscalls", F_OK) == 0)
        return 0;
    if (mount("tracefs", "/sys/kernel/tracing", "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) <
        0)
        return -errno;
    BT_INFO("watch", "mounted tracefs", "path=/sys/kernel/tracing");
    return access("/sys/kernel/tracing/events/syscalls", F_OK) == 0 ? 0 : -ENOENT;
}

static int bpf_open(struct bt_watch *w)
{
    struct bpfw *b = calloc(1, sizeof(*b));
    const char *reason = NULL;
    const char *env = getenv("BPFTAIL_BPF_REFUSE");
    char q[128];
    int rc = 0;

    if (!b)
        return -ENOMEM;
    bt_hmap_init(&b->inodes);
    bt_hmap_init(&b->paths);
    b->w = w;
    b->ops = FE_OPS_TAIL;
    libbpf_set_print(libbpf_print);
    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
        rc = -ENOTSUP;
        reason = "kernel has no BTF (/sys/kernel/btf/vmlinux)";
        goto out;
    }
    if (!bt_caps_can_bpf()) {
        rc = -EPERM;
        reason = "missing CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)";
        goto out;
    }
    b->skel = file_events_bpf__open();
    if (!b->skel) {
        rc = errno ? -errno : -EINVAL;
        reason = "cannot open the BPF object";
        goto out;
    }
    if (g_refuse || (env && strcmp(env, "1") == 0)) {
        rc = g_refuse ? g_refuse : -EPERM;
        reason = "refused by option (simulated)";
        goto out;
    }
    if (g_ring_size)
        bpf_map__set_max_entries(b->skel->maps.rb, g_ring_size);
    rc = ensure_tracefs();
    if (rc < 0) {
        reason = "tracefs is not mounted at /sys/kernel/tracing and cannot be";
        goto out;
    }
    rc = file_events_bpf__load(b->skel);
    if (rc < 0) {
        /* The BTF tracepoint for page-cache writes is optional (needs BTF tracepoints and a
         * matching argument list): retry without it before giving up. */
        BT_DEBUG("watch", "bpf: retrying without the page-cache write hook", "err=%d", rc);
        file_events_bpf__destroy(b->skel);
        b->skel = file_events_bpf__open();
        if (!b->skel) {
            rc = errno ? -errno : -EINVAL;
            reason = "cannot open the BPF object";
            goto out;
        }
        bpf_program__set_autoload(b->skel->progs.dirty_pages, false);
        if (g_ring_size)
            bpf_map__set_max_entries(b->skel->maps.rb, g_ring_size);
        rc = file_events_bpf__load(b->skel);
        b->no_dirty_hook = 1;
    }
    if (rc < 0) {
        reason = "the kernel refused the BPF programs";
        goto out;
    }
    rc = file_events_bpf__attach(b->skel);
    if (rc < 0) {
        reason = "attaching the syscall tracepoints failed";
        goto out;
    }
    b->rb = ring_buffer__new(bpf_map__fd(b->skel->maps.rb), on_event, b, NULL);
    if (!b->rb) {
        rc = errno ? -errno : -ENOMEM;
        reason = "cannot map the ring buffer";
        goto out;
    }
    b->mono_to_wall = bt_now_ns() - bt_mono_ns();
    w->impl = b;
    BT_INFO("watch", "bpf watcher ready", "programs=%u mmap_writes=%s",
            (unsigned)(sizeof(b->skel->links) / sizeof(struct bpf_link *)) - b->no_dirty_hook,
            b->no_dirty_hook ? "unseen" : "seen");
out:
    if (rc < 0) {
        BT_WARN("watch", "bpf watcher unavailable, using the next watcher", "reason=%s err=%d",
                bt_logq(q, sizeof(q), reason), rc);
        bpfw_free(b);
    }
    return rc;
}

static void bpf_close(struct bt_watch *w)
{
    bpfw_free(impl(w));
    w->impl = NULL;
}

static int bpf_add_file(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    struct bpfw *b = impl(w);

    return b ? ino_add(b, FE_W_FILE, path, dev, ino) : -EINVAL;
}

static int bpf_remove_file(struct bt_watch *w, dev_t dev, ino_t ino)
{
    struct bpfw *b = impl(w);
    struct fe_key k = {.ino = ino, .dev = kdev(dev), .pad = 0};

    return b ? ino_remove(b, &k) : -EINVAL;
}

static int bpf_add_dir(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    struct bpfw *b = impl(w);
    char norm[PATH_CAP];
    size_t n;

    if (!b || !path)
        return -EINVAL;
    n = strlen(path);
    if (n >= sizeof(norm))
        return -ENAMETOOLONG;
    memcpy(norm, path, n + 1);
    while (n > 1 && norm[n - 1] == '/')
        norm[--n] = '\0';
    return ino_add(b, FE_W_DIR, norm, dev, ino);
}

static int bpf_remove_dir(struct bt_watch *w, const char *path)
{
    struct bpfw *b = impl(w);
    struct path_ent *pe;
    char norm[PATH_CAP];
    size_t n;

    if (!b || !path)
        return -EINVAL;
    n = strlen(path);
    if (n >= sizeof(norm))
        return -ENAMETOOLONG;
    memcpy(norm, path, n + 1);
    while (n > 1 && norm[n - 1] == '/')
        norm[--n] = '\0';
    pe = bt_hmap_get(&b->paths, norm, n);
    if (!pe || pe->dir_refs <= 0)
        return -ENOENT;
    return ino_remove(b, &pe->dir_key);
}

static int bpf_fd(struct bt_watch *w)
{
    struct bpfw *b = impl(w);

    return b ? ring_buffer__epoll_fd(b->rb) : -1;
}

static int bpf_dispatch(struct bt_watch *w)
{
    struct bpfw *b = impl(w);
    uint64_t drops = 0;
    int rc;

    if (!b)
        return -EINVAL;
    b->mono_to_wall = bt_now_ns() - bt_mono_ns();
    rc = ring_buffer__consume(b->rb);
    if (rc < 0)
        return rc;
    if (read_stats(b, NULL, &drops) == 0 && drops > b->drops_seen) {
        struct bt_watch_event ev = {.mask = BT_WATCH_OVERFLOW};
        b->drops_seen = drops;
        w->lost++;
        w->fn(w->ctx, &ev);
    }
    return 0;
}

const struct bt_watch_ops bt_watch_bpf_ops = {
    .name = "bpf",
    .open = bpf_open,
    .close = bpf_close,
    .add_file = bpf_add_file,
    .remove_file = bpf_remove_file,
    .add_dir = bpf_add_dir,
    .remove_dir = bpf_remove_dir,
    .fd = bpf_fd,
    .dispatch = bpf_dispatch,
};

int bt_watch_bpf_set_ops(struct bt_watch *w, uint32_t ops)
{
    struct bpfw *b = impl(w);

    if (!b)
        return -ENOTSUP;
    b->ops = ops;
    return 0;
}

int bt_watch_bpf_ignore_tgid(struct bt_watch *w, uint32_t tgid)
{
    struct bpfw *b = impl(w);

    if (!b)
        return -ENOTSUP;
    b->skel->bss->ignore_tgid = tgid;
    return 0;
}

const struct bt_watch_bpf_info *bt_watch_bpf_current(const struct bt_watch *w)
{
    struct bpfw *b = impl(w);

    return b ? b->cur : NULL;
}

int bt_watch_bpf_stats(struct bt_watch *w, uint64_t *events, uint64_t *drops)
{
    struct bpfw *b = impl(w);

    return b ? read_stats(b, events, drops) : -ENOTSUP;
}
