/*
 * watch_bpf_int: what the BPF watcher's two files share, private to src/watch/watch_bpf*.c.
 *
 * watch_bpf.c talks to the kernel (libbpf: load, attach, maps, ring buffer) and keeps the
 * consumers' tables in step with the kernel's sets; watch_bpf_events.c matches one decoded
 * ring record against one consumer's tables and delivers it as a bt_watch event. Loop thread
 * only, like the rest of the watcher.
 */
#ifndef BT_WATCH_BPF_INT_H
#define BT_WATCH_BPF_INT_H

#include "file_events.h"
#include "util/hmap.h"
#include "watch/watch_bpf.h"

#include <stdint.h>

struct file_events_bpf;
struct ring_buffer;

#define PATH_CAP 4096

struct ino_ent {
    struct fe_key key;
    uint32_t kind; /* FE_W_FILE or FE_W_DIR */
    uint32_t ops;
    char *path;   /* owned; NULL if registered without one */
    char **alias; /* other names it is watched under (bt_watch_bpf_add_alias), owned */
    size_t nalias;
};

struct path_ent {
    int file_refs, dir_refs;
    uint32_t file_ops, dir_ops;
    struct fe_key dir_key; /* the directory registered under this path */
};

#define MAX_CONSUMERS 4

/* A kernel map entry: what each consumer asked for; the map holds their union. */
struct kval {
    struct fe_watch per[MAX_CONSUMERS];
};

struct bpfw;

struct shared {
    struct file_events_bpf *skel;
    struct ring_buffer *rb;
    int refs;
    int no_dirty_hook; /* loaded without the page-cache write hook */
    struct bpfw *consumer[MAX_CONSUMERS];
    struct bt_hmap kinodes; /* struct fe_key -> struct kval */
    struct bt_hmap kpaths;  /* path hash (8 bytes) -> struct kval */
    uint32_t *filter;       /* watched inodes per inode_filter slot (FE_FILTER_SLOTS) */
    uint64_t drops_seen;
    int64_t mono_to_wall;
    struct fe_event ev; /* the record being delivered */
    char dirbuf[PATH_CAP];
    char pathbuf[PATH_CAP];
};

struct bpfw {
    struct shared *s;
    int slot;
    int fd; /* a dup of the ring map's fd: each consumer registers its own with the loop */
    struct bt_watch *w;
    struct bt_hmap inodes;
    struct bt_hmap paths;
    uint32_t ops;
    uint32_t ignore_tgid;
    const struct bt_watch_bpf_info *cur;
};

/* The bt_watch event mask of a kernel operation (FE_OP_*). */
uint32_t wb_op_mask(uint32_t op);
/* Offers a decoded record to one consumer: delivered if it watches what the record is about. */
void wb_offer(struct bpfw *b, const struct fe_event *e, struct bt_watch_event ev,
              struct bt_watch_bpf_info info);

#endif
