/*
 * watch_bpf: what the BPF watcher offers beyond struct bt_watch_ops (watch.h).
 *
 * The BPF backend (watch_bpf.c, or watch_bpf_stub.c when built with -DBT_BPF=OFF) reports
 * more than the generic event: the exact operation, the kernel's event time, the names as the
 * process gave them, and the process. The file-integrity monitor (fim.c) uses these; the
 * tailers need only watch.h. Every function here works on a bt_watch whose ops are
 * &bt_watch_bpf_ops and returns -ENOTSUP (or NULL) otherwise or when BPF is compiled out.
 */
#ifndef BT_WATCH_BPF_H
#define BT_WATCH_BPF_H

#include <stdint.h>

#include "watch/watch.h"

/* Operations, with the values of enum fe_op in bpf/file_events.h. */
enum bt_fe_op {
    BT_FE_WRITE = 1,
    BT_FE_CREATE = 2,
    BT_FE_TRUNCATE = 3,
    BT_FE_RENAME = 4,
    BT_FE_UNLINK = 5,
    BT_FE_RMDIR = 6,
    BT_FE_CLOSE_WRITE = 7,
    BT_FE_OPEN = 8,
    BT_FE_CHMOD = 9,
    BT_FE_CHOWN = 10,
    BT_FE_DIRTY = 11, /* data changed without write(2): mmap store, io_uring... (flags: the
                         syscall number, 0xffffffff for a page fault) */
    BT_FE_LINK = 12,  /* a new hard link (name2) to an existing file */
    BT_FE_OP_MAX = 13,
};
#define BT_FE_OPBIT(op) (1u << (op))
/* The operations a tailer needs: the default mask. */
#define BT_FE_OPS_TAIL                                                                             \
    (BT_FE_OPBIT(BT_FE_WRITE) | BT_FE_OPBIT(BT_FE_CREATE) | BT_FE_OPBIT(BT_FE_TRUNCATE) |          \
     BT_FE_OPBIT(BT_FE_RENAME) | BT_FE_OPBIT(BT_FE_UNLINK) | BT_FE_OPBIT(BT_FE_RMDIR) |            \
     BT_FE_OPBIT(BT_FE_CLOSE_WRITE) | BT_FE_OPBIT(BT_FE_DIRTY) | BT_FE_OPBIT(BT_FE_LINK))

/* In an ops mask: report every write. Without it (the tailers' default), writes to a file are
 * coalesced in the kernel until the previous write's event has been read: one event per
 * dispatch round however many writes, and never a write missed. FIM sets it. */
#define BT_FE_EVERY_WRITE (1u << 31)

/* Details of the event being delivered. */
struct bt_watch_bpf_info {
    int64_t ts_ns;  /* when the kernel saw it, Unix ns */
    uint32_t op;    /* enum bt_fe_op */
    uint32_t match; /* 1 file inode, 2 parent dir inode, 4 file path, 8 dir path */
    int32_t ret;    /* syscall result (bytes for writes) */
    uint32_t flags; /* open, rename, linkat or unlinkat flags */
    uint32_t gid;
    uint64_t pino;      /* parent directory inode, 0 if unknown */
    const char *path;   /* watched path of the file (inode match) or the resolved path, or NULL */
    const char *name;   /* the file's name (fd events) or the path argument (path events) */
    const char *name2;  /* rename, link: the new name as given; else "" */
    const char *exe;    /* full path of the process's executable, as the kernel saw it (cut at
                           255 bytes; "" for kernel threads) */
    const char *cgroup; /* leaf name of the process's cgroup v2 ("" at the root) */
    int rename_new;     /* 1 for the second event of a rename or link (about name2) when the
                           first (about name) was delivered too: report the pair once */
};

/* Operation mask (BT_FE_OPBIT bits) for files and directories added from now on. */
int bt_watch_bpf_set_ops(struct bt_watch *w, uint32_t ops);
/* Events caused by process tgid are not delivered to this watch (0: deliver all). */
int bt_watch_bpf_ignore_tgid(struct bt_watch *w, uint32_t tgid);
/* The event being delivered; valid only inside w->fn, NULL elsewhere. */
const struct bt_watch_bpf_info *bt_watch_bpf_current(const struct bt_watch *w);
/* Kernel-side counters summed over CPUs: events sent and events lost to a full ring. */
int bt_watch_bpf_stats(struct bt_watch *w, uint64_t *events, uint64_t *drops);
/* Makes later opens fail with err after the checks, as if the kernel refused the programs
 * (0 clears). The environment variable BPFTAIL_BPF_REFUSE=1 does the same with -EPERM. */
void bt_watch_bpf_refuse(int err);
/* Ring-buffer size in bytes for later opens (a power of two, at least the page size; 0 restores
 * the default 4 MiB). For tests of the overflow path. */
void bt_watch_bpf_set_ring_size(uint32_t bytes);
/* Also watches the file {dev, ino} (already added with add_file) under another absolute path,
 * a name it got later (the target of a rename): path-only syscalls on that path (unlink,
 * rename, chmod, chown, truncate by path) are then delivered, with info->path the alias, so
 * the caller can report them under the name it watches. Dropped with the file's watch.
 * 0, -ENOENT (the file is not watched), -EINVAL (not absolute), -ENOMEM. */
int bt_watch_bpf_add_alias(struct bt_watch *w, const char *path, dev_t dev, ino_t ino);
int bt_watch_bpf_remove_alias(struct bt_watch *w, const char *path, dev_t dev, ino_t ino);

/* Loads and attaches the shared programs on a background thread that does nothing else (no
 * map updates, no ring reads), so the caller's start is not delayed by the load (0.1-0.3 s) or
 * by the kernel still detaching a previous instance's programs (seconds). The thread hands the
 * result to loop's thread through an eventfd registered with loop; then the callbacks added
 * with bt_watch_bpf_when_loaded run there, in the order added, with 0 or -errno. Until then a
 * bpf open fails with -EINPROGRESS; after a failed load it fails with the load's error.
 * 0 if the load started, -EALREADY if the programs are loaded or a load was already started,
 * -ENOTSUP when BPF is compiled out, -errno. */
int bt_watch_bpf_load_async(struct bt_loop *loop);
/* Runs fn(ctx, rc) on the loop thread when the background load finishes, or at once if it
 * already has. -ENOENT if no load was started. */
int bt_watch_bpf_when_loaded(void (*fn)(void *ctx, int rc), void *ctx);
/* Stops waiting for a background load before loop is freed (shutdown during the load): waits
 * for the thread, unloads what it loaded, and forgets the callbacks. */
void bt_watch_bpf_load_abandon(void);
/* 1 while a background load runs. */
int bt_watch_bpf_loading(void);

/* "write", "create", ... or "unknown". */
const char *bt_fe_op_name(uint32_t op);
/* Parses an op name (also "read" for open, "attrib" for chmod+chown) into a mask. 0 or -EINVAL. */
int bt_fe_op_parse(const char *s, uint32_t *mask);

#endif
