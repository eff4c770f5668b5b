/*
 * file_events.h: plain structs shared by the BPF program (file_events.bpf.c) and its loader
 * (src/watch/watch_bpf.c). Nothing here allocates or calls anything; both sides must agree on
 * every size, so only fixed-width types are used.
 *
 * Maps the loader fills:
 *   watched_inodes  {dev, ino} -> struct fe_watch   files (FE_W_FILE) and directories (FE_W_DIR)
 *   watched_paths   fnv1a64(path) -> struct fe_watch  for syscalls that only carry a path
 * `dev` is the kernel encoding of the device number (major << 20 | minor), not glibc's st_dev.
 */
#ifndef BT_BPF_FILE_EVENTS_H
#define BT_BPF_FILE_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define FE_NAME_MAX 256
#define FE_COMM_LEN 16
#define FE_EXE_LEN 256    /* full path of the process's executable (cut at 255 bytes) */
#define FE_EXE_DEPTH 32   /* path components walked up from the executable (a power of 2) */
#define FE_CGROUP_LEN 128 /* leaf name of the process's cgroup v2 (e.g. docker-<id>.scope) */

/* What happened. Values are stable: user space keys masks on them. */
enum fe_op {
    FE_OP_WRITE = 1,       /* write, pwrite64, writev, pwritev, pwritev2 (bytes > 0) */
    FE_OP_CREATE = 2,      /* open family with O_CREAT that created the file; mkdir, mkdirat */
    FE_OP_TRUNCATE = 3,    /* open with O_TRUNC on an existing file, truncate, ftruncate */
    FE_OP_RENAME = 4,      /* rename, renameat, renameat2: name -> name2 */
    FE_OP_UNLINK = 5,      /* unlink, unlinkat */
    FE_OP_RMDIR = 6,       /* rmdir, unlinkat(AT_REMOVEDIR) */
    FE_OP_CLOSE_WRITE = 7, /* close of a descriptor opened for writing */
    FE_OP_OPEN = 8,        /* any successful open (only when some watch asks for it) */
    FE_OP_CHMOD = 9,       /* chmod, fchmod, fchmodat */
    FE_OP_CHOWN = 10,      /* chown, lchown, fchown, fchownat */
    FE_OP_DIRTY = 11,      /* file data dirtied outside the write family: mmap store, io_uring,
                              copy_file_range, splice... (page-cache filesystems only) */
    FE_OP_LINK = 12,       /* link, linkat: a new name (name2) for an existing file (name) */
    FE_OP_MAX = 13,
};

#define FE_OPBIT(op) (1u << (op))
/* The operations a log tailer cares about. */
#define FE_OPS_TAIL                                                                                \
    (FE_OPBIT(FE_OP_WRITE) | FE_OPBIT(FE_OP_CREATE) | FE_OPBIT(FE_OP_TRUNCATE) |                   \
     FE_OPBIT(FE_OP_RENAME) | FE_OPBIT(FE_OP_UNLINK) | FE_OPBIT(FE_OP_RMDIR) |                     \
     FE_OPBIT(FE_OP_CLOSE_WRITE) | FE_OPBIT(FE_OP_DIRTY) | FE_OPBIT(FE_OP_LINK))

/* In a watch's ops: report every write. Without it, writes to a file are coalesced: after one
 * reported write the file is muted (map `muted`) until user space has read that record and
 * unmuted it, which it does before telling anyone, so no write goes unnoticed. */
#define FE_EVERY_WRITE (1u << 31)
/* In fe_event.flags of a write: this record muted its file; user space must unmute it. */
#define FE_F_MUTED 1u

enum fe_kind { FE_W_FILE = 1, FE_W_DIR = 2 };

/* How an event matched (bits of fe_event.match). */
enum fe_match {
    FE_M_INO = 1,     /* the file's own inode is watched */
    FE_M_PARENT = 2,  /* the file's parent directory inode is watched */
    FE_M_PATH = 4,    /* the absolute path argument is a watched file */
    FE_M_DIRPATH = 8, /* the directory part of the absolute path argument is watched */
};

struct fe_key {
    __u64 ino;
    __u32 dev;
    __u32 pad; /* always 0 */
};

struct fe_watch {
    __u32 kind; /* FE_W_FILE | FE_W_DIR */
    __u32 ops;  /* FE_OPBIT() mask of operations to report */
};

/* One ring-buffer record. name: fd-based events carry the file's own name (its dentry);
 * path-based events carry the path argument as the process gave it. name2 is the new
 * name of a rename or a link. */
struct fe_event {
    __u64 ts_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
    __u64 ino;   /* file inode, 0 if unknown (path-only events) */
    __u64 pino;  /* parent directory inode, 0 if unknown */
    __u64 cgroup_id;
    __u32 dev;
    __u32 op;    /* enum fe_op */
    __u32 match; /* enum fe_match bits */
    __s32 ret;   /* syscall return value (bytes written, or 0) */
    __u32 flags; /* open, rename or unlinkat flags; FE_OP_DIRTY: the syscall number, or
                    0xffffffff for a page fault (a store into a shared mapping) */
    __u32 pid;   /* thread id */
    __u32 tgid;  /* process id */
    __u32 ppid;
    __u32 uid;
    __u32 gid;
    char comm[FE_COMM_LEN];
    char exe[FE_EXE_LEN];
    char cgroup[FE_CGROUP_LEN];
    char name[FE_NAME_MAX];
    char name2[FE_NAME_MAX];
};

/* Indexes of the per-CPU stats array. */
enum fe_stat { FE_STAT_EVENTS = 0, FE_STAT_DROPS = 1, FE_STAT_MAX = 2 };

/* Prefilter for watched_inodes: a byte per slot, non-zero when some watched {dev, ino} falls
 * in that slot. An array lookup is inlined by the verifier, so most unrelated files are
 * rejected without touching the hash map. User space keeps the slot counts. */
#define FE_FILTER_SLOTS 65536
static inline __u32 fe_filter_slot(__u32 dev, __u64 ino)
{
    __u64 h = (ino ^ ((__u64)dev << 32)) * 0x9e3779b97f4a7c15ULL;
    return (__u32)(h >> 48); /* top 16 bits: FE_FILTER_SLOTS */
}

/* FNV-1a 64, the hash of watched_paths keys; user space must hash the same bytes. */
#define FE_FNV_OFFSET 0xcbf29ce484222325ULL
#define FE_FNV_PRIME 0x100000001b3ULL

#endif
