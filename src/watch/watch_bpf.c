/*
 * watch_bpf: the BPF watcher backend (struct bt_watch_ops "bpf").
 *
 * Loads bpf/file_events.bpf.c through its generated skeleton, keeps the kernel's watched
 * sets (inodes, paths) in step with add/remove calls, and turns ring-buffer records into
 * bt_watch events. The only file that includes libbpf.
 *
 * One set of programs serves every bt_watch of the process (the tail watcher and FIM): the
 * first open loads and attaches, later opens join as consumers, the last close detaches. Each
 * consumer keeps its own tables; the kernel maps hold the union of what consumers ask for
 * (struct kval), and every record is offered to each consumer, which keeps what it watches:
 *   inodes  {kernel dev, ino} -> struct ino_ent (file or directory, its path, its ops)
 *   paths   path -> struct path_ent (reference counts: a rotated file's old and new inode
 *           share a path; the kernel's watched_paths entry lives while either is watched)
 * Loop thread only: the shared state is not locked.
 */
#include "watch/watch_bpf.h"
#include "watch/watch_bpf_int.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "core/caps.h"
#include "core/loop.h"
#include "file_events.h"
#include "file_events.skel.h"
#include "util/hmap.h"
#include "util/log.h"
#include "util/timeutil.h"

_Static_assert(BT_FE_EVERY_WRITE == FE_EVERY_WRITE, "watch_bpf.h and bpf/file_events.h disagree");
_Static_assert((int)BT_FE_WRITE == (int)FE_OP_WRITE && (int)BT_FE_CHOWN == (int)FE_OP_CHOWN &&
                   (int)BT_FE_OP_MAX == (int)FE_OP_MAX && BT_FE_OPS_TAIL == FE_OPS_TAIL,
               "watch_bpf.h and bpf/file_events.h disagree");

static struct shared *g_shared;

static int g_refuse;
static int g_warned;
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

/* Records what consumer slot wants for key and writes the union of all consumers to the map. */
static int kset(struct bt_hmap *m, int mapfd, const void *key, size_t klen, int slot,
                const struct fe_watch *v)
{
    struct kval *kv = bt_hmap_get(m, key, klen);
    struct fe_watch u = {0};
    int rc;

    if (!kv) {
        if (v->kind == 0)
            return 0;
        kv = calloc(1, sizeof(*kv));
        if (!kv)
            return -ENOMEM;
        rc = bt_hmap_put(m, key, klen, kv, NULL);
        if (rc < 0) {
            free(kv);
            return rc;
        }
    }
    kv->per[slot] = *v;
    for (int i = 0; i < MAX_CONSUMERS; i++) {
        u.kind |= kv->per[i].kind;
        u.ops |= kv->per[i].ops;
    }
    if (u.kind == 0) {
        free(bt_hmap_del(m, key, klen));
        if (bpf_map_delete_elem(mapfd, key) < 0 && errno != ENOENT)
            return -errno;
        return 0;
    }
    if (bpf_map_update_elem(mapfd, key, &u, BPF_ANY) < 0)
        return -errno;
    return 0;
}

/* Counts a watched inode in or out of its prefilter slot; the kernel's byte follows the count. */
static void filter_adjust(struct shared *s, const struct fe_key *k, int delta)
{
    uint32_t slot = fe_filter_slot(k->dev, k->ino);
    uint32_t before = s->filter[slot];
    uint8_t on;

    if (delta < 0 && before == 0)
        return;
    s->filter[slot] = before + (uint32_t)delta;
    if ((before == 0) == (s->filter[slot] == 0))
        return;
    on = s->filter[slot] != 0;
    if (bpf_map_update_elem(bpf_map__fd(s->skel->maps.inode_filter), &slot, &on, BPF_ANY) < 0)
        BT_WARN("watch", "bpf: updating the inode prefilter failed", "err=%d", -errno);
}

/* kset for watched_inodes, keeping the prefilter in step: a slot is switched on before the
 * first inode in it is watched and off after the last one is not. */
static int kset_inode(struct shared *s, const struct fe_key *k, int slot, const struct fe_watch *v)
{
    int had = bt_hmap_get(&s->kinodes, k, sizeof(*k)) != NULL;
    int rc, has;

    if (!had && v->kind)
        filter_adjust(s, k, 1);
    rc = kset(&s->kinodes, bpf_map__fd(s->skel->maps.watched_inodes), k, sizeof(*k), slot, v);
    has = bt_hmap_get(&s->kinodes, k, sizeof(*k)) != NULL;
    if (!had && v->kind && !has)
        filter_adjust(s, k, -1); /* the insert failed */
    if (had && !has)
        filter_adjust(s, k, -1);
    return rc;
}

/* Lets the next write to a coalesced file be reported again. Done before anyone is told of
 * the write, so whatever is written after this point makes a new event. */
static void unmute(struct shared *s, uint32_t dev, uint64_t ino)
{
    struct fe_key k = {.ino = ino, .dev = dev, .pad = 0};

    if (bpf_map_delete_elem(bpf_map__fd(s->skel->maps.muted), &k) < 0 && errno != ENOENT)
        BT_DEBUG("watch", "bpf: unmute failed", "ino=%llu err=%d", (unsigned long long)ino, -errno);
}

/* The kernel's hash of a watched path ("/" hashes as "", the directory part of "/name"). */
static uint64_t path_key(const char *path)
{
    size_t len = strlen(path);

    if (len > 1 && path[len - 1] == '/')
        len--;
    if (len == 1 && path[0] == '/')
        len = 0;
    return fnv1a(path, len);
}

/* Writes this consumer's wish for path's watched_paths entry from its reference counts. */
static int path_sync(struct bpfw *b, const char *path, const struct path_ent *pe)
{
    struct fe_watch v = {0};
    uint64_t h = path_key(path);

    if (pe->file_refs > 0) {
        v.kind |= FE_W_FILE;
        v.ops |= pe->file_ops;
    }
    if (pe->dir_refs > 0) {
        v.kind |= FE_W_DIR;
        v.ops |= pe->dir_ops;
    }
    return kset(&b->s->kpaths, bpf_map__fd(b->s->skel->maps.watched_paths), &h, sizeof(h), b->slot,
                &v);
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
    for (size_t i = 0; i < ie->nalias; i++) {
        path_ref(b, ie->alias[i], FE_W_FILE, -1, 0, NULL);
        free(ie->alias[i]);
    }
    free(ie->alias);
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
    rc = kset_inode(b->s, &ie->key, b->slot, &v);
    if (rc < 0)
        goto fail;
    unmute(b->s, ie->key.dev, ie->key.ino); /* a stale mute from an earlier watch */
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
        b->s->skel->bss->want_open = 1;
    return 0;
fail:
    free(ie->path);
    free(ie);
    return rc;
}

static int ino_remove(struct bpfw *b, const struct fe_key *key)
{
    struct ino_ent *ie = bt_hmap_del(&b->inodes, key, sizeof(*key));
    struct fe_watch none = {0};
    int rc;

    if (!ie)
        return -ENOENT;
    rc = kset_inode(b->s, key, b->slot, &none);
    unmute(b->s, key->dev, key->ino);
    if (rc < 0)
        BT_WARN("watch", "bpf: removing an inode from the kernel set failed", "ino=%llu err=%d",
                (unsigned long long)key->ino, rc);
    ino_free(b, ie);
    return 0;
}

static int on_event(void *ctx, void *data, size_t size)
{
    struct shared *s = ctx;
    struct fe_event *e = &s->ev;
    struct bt_watch_event ev = {0};
    struct bt_watch_bpf_info info = {0};
    char comm[FE_COMM_LEN + 1];

    if (size < sizeof(*e))
        return 0;
    /* The record is read-only shared memory: copy it, then make sure the names end. */
    memcpy(e, data, sizeof(*e));
    e->name[FE_NAME_MAX - 1] = '\0';
    e->name2[FE_NAME_MAX - 1] = '\0';
    e->exe[FE_EXE_LEN - 1] = '\0';
    e->cgroup[FE_CGROUP_LEN - 1] = '\0';
    memcpy(comm, e->comm, FE_COMM_LEN);
    comm[FE_COMM_LEN] = '\0';
    ev.mask = wb_op_mask(e->op);
    ev.pid = e->pid;
    ev.tgid = e->tgid;
    ev.ppid = e->ppid;
    ev.uid = e->uid;
    ev.cgroup_id = e->cgroup_id;
    ev.comm = comm;
    if (e->ino) {
        ev.dev = udev(e->dev);
        ev.ino = e->ino;
    }
    info.ts_ns = (int64_t)e->ts_ns + s->mono_to_wall;
    info.op = e->op;
    info.match = e->match;
    info.ret = e->ret;
    info.flags = e->flags;
    info.gid = e->gid;
    info.pino = e->pino;
    info.name = e->name;
    info.name2 = e->name2;
    info.exe = e->exe;
    info.cgroup = e->cgroup;
    if (e->op == FE_OP_WRITE && (e->flags & FE_F_MUTED))
        unmute(s, e->dev, e->ino);
    for (int i = 0; i < MAX_CONSUMERS; i++)
        if (s->consumer[i])
            wb_offer(s->consumer[i], e, ev, info);
    return 0;
}

static int read_stats(struct shared *s, uint64_t *events, uint64_t *drops)
{
    int ncpu = libbpf_num_possible_cpus();
    int fd = bpf_map__fd(s->skel->maps.stats);
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

static void hmap_free_all(struct bt_hmap *m)
{
    struct bt_hmap_slot *sl;
    size_t pos = 0;

    while ((sl = bt_hmap_next(m, &pos)))
        free(sl->val);
    bt_hmap_free(m);
}

static void shared_free(struct shared *s)
{
    if (!s)
        return;
    ring_buffer__free(s->rb);
    detach_all(s->skel);
    file_events_bpf__destroy(s->skel);
    hmap_free_all(&s->kinodes);
    hmap_free_all(&s->kpaths);
    free(s->filter);
    free(s);
}

/* Withdraws the consumer's wishes from the kernel maps, frees it, and the shared programs
 * with the last consumer. */
static void bpfw_free(struct bpfw *b)
{
    struct bt_hmap_slot *sl;
    size_t pos = 0;

    if (!b)
        return;
    while ((sl = bt_hmap_next(&b->inodes, &pos)))
        ino_remove(b, &((struct ino_ent *)sl->val)->key);
    bt_hmap_free(&b->inodes);
    hmap_free_all(&b->paths);
    if (b->fd >= 0)
        close(b->fd);
    if (b->s) {
        b->s->consumer[b->slot] = NULL;
        if (--b->s->refs == 0) {
            shared_free(b->s);
            g_shared = NULL;
        }
    }
    free(b);
}

/* Whether path is reachable with the effective ids and capabilities. access() uses the real
 * uid and, for a non-root uid, no capabilities at all: run as an unprivileged user with
 * CAP_DAC_READ_SEARCH, it would say that root's 0700 /sys/kernel/tracing cannot be searched
 * while open() (what libbpf does) can. */
static bool reachable(const char *path, int mode)
{
    return faccessat(AT_FDCWD, path, mode, AT_EACCESS) == 0;
}

/* Syscall tracepoints are attached by id, read from tracefs. Mounts it when nobody has. */
static int ensure_tracefs(void)
{
    if (reachable("/sys/kernel/tracing/events/syscalls", F_OK) ||
        reachable("/sys/kernel/debug/tracing/events/syscalls", F_OK))
        return 0;
    if (mount("tracefs", "/sys/kernel/tracing", "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) <
        0)
        return -errno;
    BT_INFO("watch", "mounted tracefs", "path=/sys/kernel/tracing");
    return reachable("/sys/kernel/tracing/events/syscalls", F_OK) ? 0 : -ENOENT;
}

/* Loads and attaches the programs. NULL on failure, with *rc and *reason set. */
static struct shared *shared_open(int *rc, const char **reason)
{
    struct shared *s = calloc(1, sizeof(*s));
    const char *env = getenv("BPFTAIL_BPF_REFUSE");

    *rc = 0;
    if (!s) {
        *rc = -ENOMEM;
        *reason = "out of memory";
        return NULL;
    }
    bt_hmap_init(&s->kinodes);
    bt_hmap_init(&s->kpaths);
    s->filter = calloc(FE_FILTER_SLOTS, sizeof(*s->filter));
    if (!s->filter) {
        *rc = -ENOMEM;
        *reason = "out of memory";
        goto fail;
    }
    libbpf_set_print(libbpf_print);
    if (!reachable("/sys/kernel/btf/vmlinux", R_OK)) {
        *rc = -ENOTSUP;
        *reason = "kernel has no BTF (/sys/kernel/btf/vmlinux)";
        goto fail;
    }
    if (!bt_caps_can_bpf()) {
        *rc = -EPERM;
        *reason = "missing CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)";
        goto fail;
    }
    if (g_refuse || (env && strcmp(env, "1") == 0)) {
        *rc = g_refuse ? g_refuse : -EPERM;
        *reason = "refused by option (simulated)";
        goto fail;
    }
    *rc = ensure_tracefs();
    if (*rc < 0) {
        *reason = "tracefs is not mounted at /sys/kernel/tracing and cannot be";
        goto fail;
    }
    /* The BTF tracepoint for page-cache writes is optional (it needs BTF tracepoints and a
     * matching argument list): on failure, retry once without it. */
    for (int attempt = 0; attempt < 2; attempt++) {
        file_events_bpf__destroy(s->skel);
        s->skel = file_events_bpf__open();
        if (!s->skel) {
            *rc = errno ? -errno : -EINVAL;
            *reason = "cannot open the BPF object";
            goto fail;
        }
        if (g_ring_size)
            bpf_map__set_max_entries(s->skel->maps.rb, g_ring_size);
        s->no_dirty_hook = attempt;
        if (attempt)
            bpf_program__set_autoload(s->skel->progs.dirty_pages, false);
        *rc = file_events_bpf__load(s->skel);
        if (*rc == 0)
            break;
        BT_DEBUG("watch", "bpf: load failed", "attempt=%d err=%d", attempt + 1, *rc);
    }
    if (*rc < 0) {
        *reason = "the kernel refused the BPF programs";
        goto fail;
    }
    *rc = file_events_bpf__attach(s->skel);
    if (*rc < 0) {
        *reason = "attaching the syscall tracepoints failed";
        goto fail;
    }
    s->rb = ring_buffer__new(bpf_map__fd(s->skel->maps.rb), on_event, s, NULL);
    if (!s->rb) {
        *rc = errno ? -errno : -ENOMEM;
        *reason = "cannot map the ring buffer";
        goto fail;
    }
    s->mono_to_wall = bt_now_ns() - bt_mono_ns();
    BT_INFO("watch", "bpf watcher ready", "programs=%u mmap_writes=%s",
            (unsigned)(sizeof(s->skel->links) / sizeof(struct bpf_link *)) - s->no_dirty_hook,
            s->no_dirty_hook ? "unseen" : "seen");
    return s;
fail:
    shared_free(s);
    return NULL;
}

/* The background load (bt_watch_bpf_load_async). The thread owns `res`, `rc` and `reason`
 * until it writes the eventfd; the loop thread reads them after joining it. */
#define MAX_WAITERS 8

static struct {
    int state; /* 0 never started, 1 loading, 2 done */
    int efd;
    pthread_t th;
    struct bt_loop *loop;
    struct shared *res;
    int rc;
    const char *reason;
    int64_t t0, t1;
    struct {
        void (*fn)(void *ctx, int rc);
        void *ctx;
    } waiters[MAX_WAITERS];
    int nwait;
} g_async;

static void *load_thread(void *arg)
{
    uint64_t one = 1;

    (void)arg;
    g_async.res = shared_open(&g_async.rc, &g_async.reason);
    g_async.t1 = bt_mono_ns();
    if (write(g_async.efd, &one, sizeof(one)) < 0)
        BT_WARN("watch", "bpf: cannot signal the end of the load", "err=%d", -errno);
    return NULL;
}

static void on_loaded(struct bt_loop *l, int fd, uint32_t events, void *arg)
{
    char q[128];
    int rc;

    (void)events;
    (void)arg;
    bt_loop_del_fd(l, fd);
    pthread_join(g_async.th, NULL);
    close(g_async.efd);
    g_async.efd = -1;
    g_async.state = 2;
    if (g_async.res) {
        g_shared = g_async.res;
        BT_INFO("watch", "bpf programs loaded in the background", "ms=%lld",
                (long long)((g_async.t1 - g_async.t0) / 1000000));
    } else {
        bt_log(g_warned++ ? BT_LOG_DEBUG : BT_LOG_WARN, "watch",
               "bpf watcher unavailable, using the next watcher", "reason=%s err=%d",
               bt_logq(q, sizeof(q), g_async.reason), g_async.rc);
    }
    rc = g_async.res ? 0 : (g_async.rc < 0 ? g_async.rc : -EINVAL);
    for (int i = 0; i < g_async.nwait; i++)
        g_async.waiters[i].fn(g_async.waiters[i].ctx, rc);
    g_async.nwait = 0;
    /* A consumer that joined keeps the programs; nobody did: unload them. */
    if (g_shared && g_shared->refs == 0) {
        shared_free(g_shared);
        g_shared = NULL;
    }
}

int bt_watch_bpf_load_async(struct bt_loop *loop)
{
    sigset_t all, old;
    int rc;

    if (g_shared || g_async.state != 0)
        return -EALREADY;
    g_async.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g_async.efd < 0)
        return -errno;
    g_async.loop = loop;
    g_async.t0 = bt_mono_ns();
    rc = bt_loop_add_fd(loop, g_async.efd, EPOLLIN, on_loaded, NULL);
    if (rc < 0)
        goto fail;
    /* The thread starts with every signal blocked: signals are the loop thread's (signalfd),
     * and the caller may not have blocked them yet. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = -pthread_create(&g_async.th, NULL, load_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        bt_loop_del_fd(loop, g_async.efd);
        goto fail;
    }
    g_async.state = 1;
    return 0;
fail:
    close(g_async.efd);
    g_async.efd = -1;
    return rc;
}

int bt_watch_bpf_when_loaded(void (*fn)(void *ctx, int rc), void *ctx)
{
    if (g_async.state == 0)
        return -ENOENT;
    if (g_async.state == 2) {
        fn(ctx, g_shared ? 0 : (g_async.rc < 0 ? g_async.rc : -EINVAL));
        return 0;
    }
    if (g_async.nwait >= MAX_WAITERS)
        return -ENOSPC;
    g_async.waiters[g_async.nwait].fn = fn;
    g_async.waiters[g_async.nwait].ctx = ctx;
    g_async.nwait++;
    return 0;
}

void bt_watch_bpf_load_abandon(void)
{
    if (g_async.state != 1)
        return;
    bt_loop_del_fd(g_async.loop, g_async.efd);
    pthread_join(g_async.th, NULL);
    close(g_async.efd);
    g_async.efd = -1;
    g_async.state = 0;
    g_async.nwait = 0;
    if (g_async.res && !g_shared)
        shared_free(g_async.res);
    g_async.res = NULL;
}

int bt_watch_bpf_loading(void)
{
    return g_async.state == 1;
}

static int bpf_open(struct bt_watch *w)
{
    struct bpfw *b = calloc(1, sizeof(*b));
    const char *reason = NULL;
    char q[128];
    int rc = 0;

    if (!b)
        return -ENOMEM;
    bt_hmap_init(&b->inodes);
    bt_hmap_init(&b->paths);
    b->w = w;
    b->fd = -1;
    b->ops = FE_OPS_TAIL;
    if (!g_shared && g_async.state == 1) {
        rc = -EINPROGRESS; /* the background load decides */
        goto out;
    }
    if (!g_shared && g_async.state == 2) {
        rc = g_async.rc < 0 ? g_async.rc : -EINVAL; /* failed already, and said so */
        goto out;
    }
    if (!g_shared) {
        g_shared = shared_open(&rc, &reason);
        if (!g_shared) {
            /* Said once per process: the tail watcher and FIM may both ask. */
            bt_log(g_warned++ ? BT_LOG_DEBUG : BT_LOG_WARN, "watch",
                   "bpf watcher unavailable, using the next watcher", "reason=%s err=%d",
                   bt_logq(q, sizeof(q), reason), rc);
            goto out;
        }
    }
    b->slot = -1;
    for (int i = 0; i < MAX_CONSUMERS && b->slot < 0; i++)
        if (!g_shared->consumer[i])
            b->slot = i;
    if (b->slot < 0) {
        rc = -EBUSY;
        BT_WARN("watch", "bpf watcher: too many users of the shared programs", "max=%d",
                MAX_CONSUMERS);
        goto out;
    }
    /* The ring map's own fd is pollable; the loop watches it directly rather than libbpf's
     * epoll fd around it (one epoll level fewer; no measurable latency difference here). */
    b->fd = fcntl(bpf_map__fd(g_shared->skel->maps.rb), F_DUPFD_CLOEXEC, 0);
    if (b->fd < 0) {
        rc = -errno;
        goto out;
    }
    b->s = g_shared;
    g_shared->consumer[b->slot] = b;
    g_shared->refs++;
    w->impl = b;
out:
    if (rc < 0) {
        if (g_shared && g_shared->refs == 0) {
            shared_free(g_shared);
            g_shared = NULL;
        }
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

    return b ? b->fd : -1;
}

/* Consumes every pending record (offering each to every consumer) and reports a rise of the
 * kernel's lost-record count to every consumer as one overflow event. */
static int bpf_dispatch(struct bt_watch *w)
{
    struct bpfw *b = impl(w);
    struct shared *s;
    uint64_t drops = 0;
    int rc;

    if (!b)
        return -EINVAL;
    s = b->s;
    s->mono_to_wall = bt_now_ns() - bt_mono_ns();
    rc = ring_buffer__consume(s->rb);
    if (rc < 0)
        return rc;
    if (read_stats(s, NULL, &drops) == 0 && drops > s->drops_seen) {
        struct bt_watch_event ev = {.mask = BT_WATCH_OVERFLOW};
        s->drops_seen = drops;
        for (int i = 0; i < MAX_CONSUMERS; i++) {
            struct bpfw *c = s->consumer[i];
            if (!c)
                continue;
            c->w->lost++;
            c->w->fn(c->w->ctx, &ev);
        }
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
    b->ignore_tgid = tgid;
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

    return b ? read_stats(b->s, events, drops) : -ENOTSUP;
}

int bt_watch_bpf_add_alias(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    struct bpfw *b = impl(w);
    struct fe_key k = {.ino = ino, .dev = kdev(dev), .pad = 0};
    struct ino_ent *ie;
    char **na, *p;
    int rc;

    if (!b)
        return -ENOTSUP;
    if (!path || path[0] != '/')
        return -EINVAL;
    ie = bt_hmap_get(&b->inodes, &k, sizeof(k));
    if (!ie || ie->kind != FE_W_FILE)
        return -ENOENT;
    if (ie->path && strcmp(ie->path, path) == 0)
        return 0;
    for (size_t i = 0; i < ie->nalias; i++)
        if (strcmp(ie->alias[i], path) == 0)
            return 0;
    na = realloc(ie->alias, (ie->nalias + 1) * sizeof(*na));
    if (!na)
        return -ENOMEM;
    ie->alias = na;
    p = strdup(path);
    if (!p)
        return -ENOMEM;
    rc = path_ref(b, p, FE_W_FILE, 1, ie->ops, NULL);
    if (rc < 0) {
        free(p);
        return rc;
    }
    ie->alias[ie->nalias++] = p;
    return 0;
}

int bt_watch_bpf_remove_alias(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    struct bpfw *b = impl(w);
    struct fe_key k = {.ino = ino, .dev = kdev(dev), .pad = 0};
    struct ino_ent *ie;

    if (!b)
        return -ENOTSUP;
    ie = bt_hmap_get(&b->inodes, &k, sizeof(k));
    for (size_t i = 0; ie && i < ie->nalias; i++) {
        if (strcmp(ie->alias[i], path) != 0)
            continue;
        path_ref(b, ie->alias[i], FE_W_FILE, -1, 0, NULL);
        free(ie->alias[i]);
        ie->alias[i] = ie->alias[--ie->nalias];
        return 0;
    }
    return -ENOENT;
}
