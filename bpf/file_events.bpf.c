// SPDX-License-Identifier: GPL-2.0
/*
 * file_events.bpf.c: file events from syscall tracepoints, filtered in the kernel.
 *
 * Only syscall tracepoint (tp/syscalls) programs are used: they load on kernels that refuse BPF
 * trampolines (fentry/fexit/LSM) and kprobes. A syscall is reported when the file it touches is a
 * watched inode, or lives in a watched directory inode, or (for path-only syscalls) when its
 * absolute path or that path's directory is in watched_paths. Everything else returns before any
 * ring-buffer work.
 *
 * Shape:
 *  1. fd-based calls (write family, ftruncate, fchmod, fchown) resolve the fd at entry, stash
 *     the match in `pending`, and emit at exit only if the call succeeded: a tailer woken by
 *     the event must find the bytes already written.
 *  2. The open family stashes its flags at entry (only when O_CREAT/O_TRUNC, or when some
 *     watch asks for opens) and decides at exit, from the new fd, whether the call created
 *     (FMODE_CREATED), truncated or merely opened the file.
 *  3. Path-based calls (unlink, rename, link, truncate, chmod, chown) match the path argument at
 *     entry: absolute paths by hash, bare names by the inode of dirfd or the cwd. Relative
 *     paths with a '/' are not matched (see docs/bpf.md).
 *  4. close is reported at entry when the file was open for writing.
 *  5. Data dirtied without a write-family syscall (stores into a shared mapping, io_uring,
 *     copy_file_range, ...) is seen by the BTF tracepoint writeback_mark_inode_dirty, once per
 *     clean->dirty transition, on page-cache filesystems only. This program is optional: the
 *     loader drops it when the kernel refuses it.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "file_events.h"

char LICENSE[] SEC("license") = "GPL";

#define FMODE_WRITE 0x2
#define FMODE_CREATED 0x100000
#define O_CREAT 0100
#define O_TRUNC 01000
#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct fe_key);
    __type(value, struct fe_watch);
} watched_inodes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, __u64);
    __type(value, struct fe_watch);
} watched_paths SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, FE_FILTER_SLOTS);
    __type(key, __u32);
    __type(value, __u8);
} inode_filter SEC(".maps");

/* A matched syscall waiting for its exit, per thread (one syscall at a time). Task storage:
 * the exit of every write looks here, and a task lookup is much cheaper than a hash lookup
 * (exit_write went from 127 to 100 ns per call by kernel.bpf_stats_enabled, which adds its own
 * clock reads to both). op == 0 means nothing is pending. */
struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct fe_event);
} pending SEC(".maps");

/* Files whose writes are coalesced and already reported, until user space reads the record
 * (see FE_EVERY_WRITE). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct fe_key);
    __type(value, __u8);
} muted SEC(".maps");

/* Open flags stashed at entry, keyed by pid_tgid. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, __u64);
    __type(value, __u32);
} open_flags SEC(".maps");

/* Per-CPU space to build an event: too big for the 512-byte stack. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct fe_event);
} scratch SEC(".maps");

/* Room to build the executable's path: the component names found walking up, then the path
 * written top down. Twice FE_EXE_LEN so that a name copied at any offset below FE_EXE_LEN fits. */
struct exe_scratch {
    const unsigned char *names[FE_EXE_DEPTH];
    char buf[FE_EXE_LEN * 2 + 1];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct exe_scratch);
} exe_scratch SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, FE_STAT_MAX);
    __type(key, __u32);
    __type(value, __u64);
} stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4 << 20);
} rb SEC(".maps");

/* Set by user space after load (bss). */
__u32 want_open = 0; /* 1 when some watch asks for FE_OP_OPEN */

struct fmatch {
    struct fe_key key; /* the file, or the parent directory for path-only matches */
    __u64 pino;
    __u32 match;
    __u32 ops;
};

static __always_inline void stat_inc(__u32 idx)
{
    __u64 *v = bpf_map_lookup_elem(&stats, &idx);
    if (v)
        (*v)++;
}

/* Kernel function (6.2+): turns a scalar into a read-only BTF pointer, so the loads below are
 * plain (fault-checked) memory loads instead of bpf_probe_read_kernel calls: about 3x cheaper
 * on the path every unrelated write takes. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

static __always_inline struct file *fd_file(int fd)
{
    struct task_struct *t = bpf_get_current_task_btf();
    struct fdtable *fdt = t->files->fdt;
    struct file **fds;
    struct file *f = NULL;

    if (fd < 0 || !fdt || (unsigned int)fd >= fdt->max_fds)
        return NULL;
    fds = fdt->fd;
    bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
    if (!f)
        return NULL;
    return bpf_rdonly_cast(f, bpf_core_type_id_kernel(struct file));
}

/* Matches a struct file by its inode and its parent directory's inode. */
/* Looks up {dev, ino} in watched_inodes, after the cheap prefilter. */
static __always_inline struct fe_watch *watched(const struct fe_key *k)
{
    __u32 slot = fe_filter_slot(k->dev, k->ino);
    __u8 *hit = bpf_map_lookup_elem(&inode_filter, &slot);

    if (!hit || !*hit)
        return NULL;
    return bpf_map_lookup_elem(&watched_inodes, k);
}

static __always_inline __u32 match_file(struct file *f, struct fmatch *m)
{
    struct inode *inode = f->f_inode;
    struct fe_watch *w;
    struct fe_key pk;

    m->key.ino = inode->i_ino;
    m->key.dev = inode->i_sb->s_dev;
    m->key.pad = 0;
    m->match = 0;
    m->ops = 0;
    w = watched(&m->key);
    if (w && (w->kind & FE_W_FILE)) {
        m->match |= FE_M_INO;
        m->ops |= w->ops;
    }
    pk.ino = f->f_path.dentry->d_parent->d_inode->i_ino;
    pk.dev = m->key.dev;
    pk.pad = 0;
    m->pino = pk.ino;
    w = watched(&pk);
    if (w && (w->kind & FE_W_DIR)) {
        m->match |= FE_M_PARENT;
        m->ops |= w->ops;
    }
    return m->match;
}

static __always_inline void fill_from_file(struct fe_event *e, struct file *f,
                                           const struct fmatch *m, __u32 op)
{
    const unsigned char *name = BPF_CORE_READ(f, f_path.dentry, d_name.name);

    e->op = op;
    e->ino = m->key.ino;
    e->dev = m->key.dev;
    e->pino = m->pino;
    e->match = m->match;
    e->flags = 0;
    e->name2[0] = 0;
    if (bpf_probe_read_kernel_str(e->name, sizeof(e->name), name) < 0)
        e->name[0] = 0;
}

/* The full path of t's executable into out (FE_EXE_LEN bytes, cut at the end if longer), built
 * from the dentry chain of mm->exe_file up to the root of the task's mount tree, crossing
 * mounts. bpf_d_path is not allowed from tracepoints; this reads the same structures with a
 * bounded walk. Deeper than FE_EXE_DEPTH components: the top ones are left out. */
struct exe_walk {
    __u64 de, vm, mnt; /* kernel pointers, read with probe reads only */
    __u32 n, off;
};

static __always_inline struct exe_scratch *exe_sc(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&exe_scratch, &zero);
}

/* One step up: record the dentry's name, or cross to the mount it sits on. 1 stops. */
static long exe_up(__u64 idx, void *arg)
{
    struct exe_walk *w = arg;
    struct exe_scratch *sc = exe_sc();
    struct dentry *de = (struct dentry *)w->de, *parent;
    struct vfsmount *vm = (struct vfsmount *)w->vm;
    struct mount *mnt = (struct mount *)w->mnt, *pm;

    if (!sc || w->n >= FE_EXE_DEPTH)
        return 1;
    if (de == BPF_CORE_READ(vm, mnt_root)) {
        pm = BPF_CORE_READ(mnt, mnt_parent);
        if (!pm || pm == mnt)
            return 1; /* the root of the mount tree */
        w->de = (__u64)BPF_CORE_READ(mnt, mnt_mountpoint);
        w->mnt = (__u64)pm;
        w->vm = (__u64)pm + bpf_core_field_offset(struct mount, mnt);
        return 0;
    }
    parent = BPF_CORE_READ(de, d_parent);
    if (!parent || parent == de)
        return 1;
    sc->names[w->n & (FE_EXE_DEPTH - 1)] = BPF_CORE_READ(de, d_name.name);
    w->n++;
    w->de = (__u64)parent;
    return 0;
}

/* Appends "/" and the idx-th name from the top. 1 stops. */
static long exe_put(__u64 idx, void *arg)
{
    struct exe_walk *w = arg;
    struct exe_scratch *sc = exe_sc();
    __u32 i, o;
    long r;

    if (!sc || idx >= w->n || w->n > FE_EXE_DEPTH)
        return 1;
    if (w->off >= FE_EXE_LEN - 1)
        return 1;
    i = (w->n - 1 - (__u32)idx) & (FE_EXE_DEPTH - 1);
    o = w->off & (FE_EXE_LEN - 1);
    sc->buf[o] = '/';
    r = bpf_probe_read_kernel_str(&sc->buf[o + 1], FE_EXE_LEN, sc->names[i]);
    w->off = o + 1 + (r > 1 ? (__u32)r - 1 : 0);
    return 0;
}

/* The full path of t's executable into out (FE_EXE_LEN bytes, cut at the end if longer), built
 * from the dentry chain of mm->exe_file up to the root of the task's mount tree, crossing
 * mounts. bpf_d_path is not allowed from tracepoints; this reads the same structures with two
 * bpf_loop walks (each callback is verified once). Deeper than FE_EXE_DEPTH components: the
 * top ones are left out. */
static __noinline int exe_path(struct task_struct *t, char *out)
{
    struct exe_scratch *sc = exe_sc();
    struct exe_walk w = {};
    struct file *f;

    if (!sc)
        return -1;
    sc->buf[0] = 0;
    f = BPF_CORE_READ(t, mm, exe_file);
    if (f) {
        w.de = (__u64)BPF_CORE_READ(f, f_path.dentry);
        w.vm = (__u64)BPF_CORE_READ(f, f_path.mnt);
        w.mnt = w.vm - bpf_core_field_offset(struct mount, mnt);
        bpf_loop(FE_EXE_DEPTH + 16, exe_up, &w, 0);
        bpf_loop(FE_EXE_DEPTH, exe_put, &w, 0);
    }
    bpf_probe_read_kernel(out, FE_EXE_LEN, sc->buf);
    out[FE_EXE_LEN - 1] = 0;
    return 0;
}

/* Sends a copy of src with the current process context and ret. 0, or -1 if the ring is full. */
static __always_inline int emit(const struct fe_event *src, long ret)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    struct fe_event *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
    __u64 id, ug;

    if (!e) {
        stat_inc(FE_STAT_DROPS);
        return -1;
    }
    bpf_probe_read_kernel(e, sizeof(*e), src);
    id = bpf_get_current_pid_tgid();
    ug = bpf_get_current_uid_gid();
    e->ts_ns = bpf_ktime_get_ns();
    e->ret = (__s32)ret;
    e->pid = (__u32)id;
    e->tgid = id >> 32;
    e->uid = (__u32)ug;
    e->gid = ug >> 32;
    e->ppid = BPF_CORE_READ(t, real_parent, tgid);
    e->cgroup_id = bpf_get_current_cgroup_id();
    bpf_get_current_comm(e->comm, sizeof(e->comm));
    /* Read here, not later from /proc: the process may be gone by the time user space looks. */
    exe_path(t, e->exe);
    if (bpf_probe_read_kernel_str(e->cgroup, sizeof(e->cgroup),
                                  BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, name)) < 0)
        e->cgroup[0] = 0;
    bpf_ringbuf_submit(e, 0);
    stat_inc(FE_STAT_EVENTS);
    return 0;
}

static __always_inline struct fe_event *scratch_event(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&scratch, &zero);
}

/* Keeps e for the current thread's syscall exit. */
static __always_inline void stash(const struct fe_event *e)
{
    struct fe_event *p = bpf_task_storage_get(&pending, bpf_get_current_task_btf(), 0,
                                              BPF_LOCAL_STORAGE_GET_F_CREATE);

    if (p)
        bpf_probe_read_kernel(p, sizeof(*p), e);
}

/* fd-based calls: match at entry, emit at exit. */
static __always_inline int fd_enter(int fd, __u32 op)
{
    struct fmatch m;
    struct fe_event *e;
    struct file *f;

    f = fd_file(fd);
    if (!f || !match_file(f, &m) || !(m.ops & FE_OPBIT(op)))
        return 0;
    /* A muted file's write is already known to user space: nothing to stash. */
    if (op == FE_OP_WRITE && !(m.ops & FE_EVERY_WRITE) && bpf_map_lookup_elem(&muted, &m.key))
        return 0;
    e = scratch_event();
    if (!e)
        return 0;
    fill_from_file(e, f, &m, op);
    if (op == FE_OP_WRITE && !(m.ops & FE_EVERY_WRITE))
        e->flags = FE_F_MUTED;
    stash(e);
    return 0;
}

/* Exit of any call stashed in `pending`: emit on success (a write must have written). */
static __always_inline int pending_exit(long ret)
{
    struct fe_event *p = bpf_task_storage_get(&pending, bpf_get_current_task_btf(), 0, 0);
    struct fe_key k;
    __u8 one = 1;

    if (!p || !p->op)
        return 0;
    if (ret > 0 || (ret == 0 && p->op != FE_OP_WRITE)) {
        if (p->flags & FE_F_MUTED) {
            /* Mute before the record is visible: user space unmutes after reading it, and an
             * unmute that came first would leave the file muted for good. */
            k.ino = p->ino;
            k.dev = p->dev;
            k.pad = 0;
            bpf_map_update_elem(&muted, &k, &one, BPF_ANY);
            if (emit(p, ret) < 0)
                bpf_map_delete_elem(&muted, &k);
        } else {
            emit(p, ret);
        }
    }
    p->op = 0;
    return 0;
}

struct hash_ctx {
    const char *s;
    __u64 h, d;
    int slash;
};

static long hash_step(__u32 i, void *arg)
{
    struct hash_ctx *c = arg;
    unsigned char ch;

    if (i >= FE_NAME_MAX)
        return 1;
    ch = c->s[i];
    if (!ch)
        return 1;
    if (ch == '/') {
        c->d = c->h;
        c->slash = 1;
    }
    c->h = (c->h ^ ch) * FE_FNV_PRIME;
    return 0;
}

/* FNV-1a of the whole path and of the part before its last '/'. Returns 1 if it has a '/'.
 * bpf_loop (5.17+) keeps verification cheap: the callback is checked once, not per byte. */
static __always_inline int path_hash(const char *s, __u64 *full, __u64 *dir)
{
    struct hash_ctx c = {.s = s, .h = FE_FNV_OFFSET, .d = 0, .slash = 0};

    bpf_loop(FE_NAME_MAX, hash_step, &c, 0);
    *full = c.h;
    *dir = c.d;
    return c.slash;
}

/* Reads a path argument into buf and matches it. Adds to m; returns the match bits. */
static __always_inline __u32 match_path(int dfd, const char *upath, char *buf, struct fmatch *m)
{
    struct fe_watch *w;
    struct inode *dir;
    struct fe_key k;
    __u64 full, dh;
    __u32 got = 0;

    if (bpf_probe_read_user_str(buf, FE_NAME_MAX, upath) <= 0) {
        buf[0] = 0;
        return 0;
    }
    if (buf[0] == '/') {
        path_hash(buf, &full, &dh);
        w = bpf_map_lookup_elem(&watched_paths, &full);
        if (w && (w->kind & FE_W_FILE)) {
            got |= FE_M_PATH;
            m->ops |= w->ops;
        }
        w = bpf_map_lookup_elem(&watched_paths, &dh);
        if (w && (w->kind & FE_W_DIR)) {
            got |= FE_M_DIRPATH;
            m->ops |= w->ops;
        }
        m->match |= got;
        return got;
    }
    if (path_hash(buf, &full, &dh))
        return 0; /* relative with a '/': not matched */
    if (dfd == AT_FDCWD) {
        struct task_struct *t = (struct task_struct *)bpf_get_current_task();
        dir = BPF_CORE_READ(t, fs, pwd.dentry, d_inode);
    } else {
        struct file *f = fd_file(dfd);
        if (!f)
            return 0;
        dir = BPF_CORE_READ(f, f_inode);
    }
    k.ino = BPF_CORE_READ(dir, i_ino);
    k.dev = BPF_CORE_READ(dir, i_sb, s_dev);
    k.pad = 0;
    w = watched(&k);
    if (w && (w->kind & FE_W_DIR)) {
        got |= FE_M_PARENT;
        m->ops |= w->ops;
        m->pino = k.ino;
        m->key.dev = k.dev;
    }
    m->match |= got;
    return got;
}

/* Path-based calls: match one or two path arguments at entry, emit at exit. */
static __always_inline int path_enter(__u32 op, int dfd, const char *p1, int dfd2, const char *p2,
                                      __u32 flags)
{
    struct fmatch m = {};
    struct fe_event *e;

    e = scratch_event();
    if (!e)
        return 0;
    match_path(dfd, p1, e->name, &m);
    e->name2[0] = 0;
    if (p2)
        match_path(dfd2, p2, e->name2, &m);
    if (!m.match || !(m.ops & FE_OPBIT(op)))
        return 0;
    e->op = op;
    e->ino = 0;
    e->dev = m.key.dev;
    e->pino = m.pino;
    e->match = m.match;
    e->flags = flags;
    stash(e);
    return 0;
}

static __always_inline int open_enter(__u64 flags)
{
    __u64 id;
    __u32 fl = (__u32)flags;

    if (!(flags & (O_CREAT | O_TRUNC)) && !want_open)
        return 0;
    id = bpf_get_current_pid_tgid();
    bpf_map_update_elem(&open_flags, &id, &fl, BPF_ANY);
    return 0;
}

/* Decides at exit, from the new fd, what the open did. */
static __always_inline int open_exit(long ret)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u32 *fp = bpf_map_lookup_elem(&open_flags, &id);
    struct fmatch m;
    struct fe_event *e;
    struct file *f;
    __u32 flags, fmode, op;

    if (!fp)
        return 0;
    flags = *fp;
    bpf_map_delete_elem(&open_flags, &id);
    if (ret < 0)
        return 0;
    f = fd_file((int)ret);
    if (!f || !match_file(f, &m))
        return 0;
    fmode = BPF_CORE_READ(f, f_mode);
    if (fmode & FMODE_CREATED)
        op = FE_OP_CREATE;
    else if ((flags & O_TRUNC) && (fmode & FMODE_WRITE))
        op = FE_OP_TRUNCATE;
    else
        op = FE_OP_OPEN;
    if (!(m.ops & FE_OPBIT(op))) {
        if (op == FE_OP_OPEN || !(m.ops & FE_OPBIT(FE_OP_OPEN)))
            return 0;
        op = FE_OP_OPEN;
    }
    e = scratch_event();
    if (!e)
        return 0;
    fill_from_file(e, f, &m, op);
    e->flags = flags;
    emit(e, 0);
    return 0;
}

#define ARG(ctx, i) ((ctx)->args[i])
#define ENTER(name)                                                                                \
    SEC("tp/syscalls/sys_enter_" #name) int enter_##name(struct trace_event_raw_sys_enter *ctx)
#define EXIT(name)                                                                                 \
    SEC("tp/syscalls/sys_exit_" #name) int exit_##name(struct trace_event_raw_sys_exit *ctx)
#define PENDING_EXIT(name)                                                                         \
    EXIT(name)                                                                                     \
    {                                                                                              \
        return pending_exit(ctx->ret);                                                             \
    }

/* write family */
ENTER(write)
{
    return fd_enter((int)ARG(ctx, 0), FE_OP_WRITE);
}
ENTER(pwrite64)
{
    return fd_enter((int)ARG(ctx, 0), FE_OP_WRITE);
}
ENTER(writev)
{
    return fd_enter((int)ARG(ctx, 0), FE_OP_WRITE);
}
ENTER(pwritev)
{
    return fd_enter((int)ARG(ctx, 0), FE_OP_WRITE);
}
ENTER(pwritev2)
{
    return fd_enter((int)ARG(ctx, 0), FE_OP_WRITE);
}
PENDING_EXIT(write)
PENDING_EXIT(pwrite64)
PENDING_EXIT(writev)
PENDING_EXIT(pwritev)
PENDING_EXIT(pwritev2)

/* truncation */
ENTER(ftruncate)
{
    return fd_enter((int)ARG(ctx, 0), FE_OP_TRUNCATE);
}
ENTER(truncate)
{
    return path_enter(FE_OP_TRUNCATE, AT_FDCWD, (const char *)ARG(ctx, 0), 0, NULL, 0);
}
PENDING_EXIT(ftruncate)
PENDING_EXIT(truncate)

/* open family */
ENTER(open)
{
    return open_enter(ARG(ctx, 1));
}
ENTER(openat)
{
    return open_enter(ARG(ctx, 2));
}
ENTER(creat)
{
    return open_enter(O_CREAT | O_TRUNC | 1);
}
ENTER(openat2)
{
    struct open_how how = {};

    if (bpf_probe_read_user(&how, sizeof(how), (void *)ARG(ctx, 2)) < 0)
        return 0;
    return open_enter(how.flags);
}
EXIT(open)
{
    return open_exit(ctx->ret);
}
EXIT(openat)
{
    return open_exit(ctx->ret);
}
EXIT(creat)
{
    return open_exit(ctx->ret);
}
EXIT(openat2)
{
    return open_exit(ctx->ret);
}

/* directories appearing: reported as creates, so watchers of globs find new subdirectories */
ENTER(mkdir)
{
    return path_enter(FE_OP_CREATE, AT_FDCWD, (const char *)ARG(ctx, 0), 0, NULL, 0);
}
ENTER(mkdirat)
{
    return path_enter(FE_OP_CREATE, (int)ARG(ctx, 0), (const char *)ARG(ctx, 1), 0, NULL, 0);
}
PENDING_EXIT(mkdir)
PENDING_EXIT(mkdirat)

/* names going away */
ENTER(unlink)
{
    return path_enter(FE_OP_UNLINK, AT_FDCWD, (const char *)ARG(ctx, 0), 0, NULL, 0);
}
ENTER(rmdir)
{
    return path_enter(FE_OP_RMDIR, AT_FDCWD, (const char *)ARG(ctx, 0), 0, NULL, 0);
}
ENTER(unlinkat)
{
    __u32 fl = (__u32)ARG(ctx, 2);

    return path_enter((fl & AT_REMOVEDIR) ? FE_OP_RMDIR : FE_OP_UNLINK, (int)ARG(ctx, 0),
                      (const char *)ARG(ctx, 1), 0, NULL, fl);
}
PENDING_EXIT(unlink)
PENDING_EXIT(rmdir)
PENDING_EXIT(unlinkat)

/* renames */
ENTER(rename)
{
    return path_enter(FE_OP_RENAME, AT_FDCWD, (const char *)ARG(ctx, 0), AT_FDCWD,
                      (const char *)ARG(ctx, 1), 0);
}
ENTER(renameat)
{
    return path_enter(FE_OP_RENAME, (int)ARG(ctx, 0), (const char *)ARG(ctx, 1), (int)ARG(ctx, 2),
                      (const char *)ARG(ctx, 3), 0);
}
ENTER(renameat2)
{
    return path_enter(FE_OP_RENAME, (int)ARG(ctx, 0), (const char *)ARG(ctx, 1), (int)ARG(ctx, 2),
                      (const char *)ARG(ctx, 3), (__u32)ARG(ctx, 4));
}
PENDING_EXIT(rename)
PENDING_EXIT(renameat)
PENDING_EXIT(renameat2)

/* new hard links: matched like renames (old name, new name), reported on success. linkat with
 * AT_EMPTY_PATH (an O_TMPFILE being given a name) has no old path and is not matched. */
ENTER(link)
{
    return path_enter(FE_OP_LINK, AT_FDCWD, (const char *)ARG(ctx, 0), AT_FDCWD,
                      (const char *)ARG(ctx, 1), 0);
}
ENTER(linkat)
{
    return path_enter(FE_OP_LINK, (int)ARG(ctx, 0), (const char *)ARG(ctx, 1), (int)ARG(ctx, 2),
                      (const char *)ARG(ctx, 3), (__u32)ARG(ctx, 4));
}
PENDING_EXIT(link)
PENDING_EXIT(linkat)

/* close after write: reported at entry, the file is still reachable through the fd */
ENTER(close)
{
    struct fmatch m;
    struct fe_event *e;
    struct file *f;

    f = fd_file((int)ARG(ctx, 0));
    if (!f || !(BPF_CORE_READ(f, f_mode) & FMODE_WRITE))
        return 0;
    if (!match_file(f, &m) || !(m.ops & FE_OPBIT(FE_OP_CLOSE_WRITE)))
        return 0;
    e = scratch_event();
    if (!e)
        return 0;
    fill_from_file(e, f, &m, FE_OP_CLOSE_WRITE);
    emit(e, 0);
    return 0;
}

/* attribute changes */
ENTER(fchmod)
{
    return fd_enter((int)ARG(ctx, 0), FE_OP_CHMOD);
}
ENTER(chmod)
{
    return path_enter(FE_OP_CHMOD, AT_FDCWD, (const char *)ARG(ctx, 0), 0, NULL, 0);
}
ENTER(fchmodat)
{
    return path_enter(FE_OP_CHMOD, (int)ARG(ctx, 0), (const char *)ARG(ctx, 1), 0, NULL, 0);
}
ENTER(fchown)
{
    return fd_enter((int)ARG(ctx, 0), FE_OP_CHOWN);
}
ENTER(chown)
{
    return path_enter(FE_OP_CHOWN, AT_FDCWD, (const char *)ARG(ctx, 0), 0, NULL, 0);
}
ENTER(lchown)
{
    return path_enter(FE_OP_CHOWN, AT_FDCWD, (const char *)ARG(ctx, 0), 0, NULL, 0);
}
ENTER(fchownat)
{
    return path_enter(FE_OP_CHOWN, (int)ARG(ctx, 0), (const char *)ARG(ctx, 1), 0, NULL, 0);
}
PENDING_EXIT(fchmod)
PENDING_EXIT(chmod)
PENDING_EXIT(fchmodat)
PENDING_EXIT(fchown)
PENDING_EXIT(chown)
PENDING_EXIT(lchown)
PENDING_EXIT(fchownat)

/* When the page-cache hook reports: a page fault (a store into a shared mapping; orig_ax is
 * -1) or a syscall that moves data without the write family. Everything else is either
 * reported by the syscall tracepoints already or only dirties metadata (chmod on ext4 shows
 * up here with the pages flag too). x86-64 numbers. */
static __always_inline int dirty_source(long nr)
{
    switch (nr) {
    case -1:  /* page fault */
    case 40:  /* sendfile */
    case 275: /* splice */
    case 276: /* tee */
    case 278: /* vmsplice */
    case 285: /* fallocate */
    case 326: /* copy_file_range */
    case 426: /* io_uring_enter (and its io-wq workers) */ return 1;
    }
    return 0;
}

SEC("tp_btf/writeback_mark_inode_dirty")
int BPF_PROG(dirty_pages, struct inode *inode, int flags)
{
    struct task_struct *t;
    struct fe_watch *w;
    struct fe_event *e;
    struct fe_key k;
    long nr;

    if (!inode || !(flags & bpf_core_enum_value(enum inode_state_flags_t, I_DIRTY_PAGES)))
        return 0;
    k.ino = inode->i_ino;
    k.dev = inode->i_sb->s_dev;
    k.pad = 0;
    w = watched(&k);
    if (!w || !(w->kind & FE_W_FILE) || !(w->ops & FE_OPBIT(FE_OP_DIRTY)))
        return 0;
    t = bpf_get_current_task_btf();
    nr = ((struct pt_regs *)bpf_task_pt_regs(t))->orig_ax;
    if (!dirty_source(nr))
        return 0;
    e = scratch_event();
    if (!e)
        return 0;
    e->op = FE_OP_DIRTY;
    e->ino = k.ino;
    e->dev = k.dev;
    e->pino = 0;
    e->match = FE_M_INO;
    e->flags = (__u32)nr;
    e->name[0] = 0;
    e->name2[0] = 0;
    emit(e, 0);
    return 0;
}
