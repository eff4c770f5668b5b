/*
 * watch: tells the tailers that a watched file or directory may have changed.
 *
 * Events are hints; the tailer decides with fstat and the file's fingerprint. Several
 * implementations sit behind one table of function pointers: bpf (watch_bpf.c), fanotify,
 * inotify (watch_inotify.c) and poll (watch_poll.c, no events: the reconcile timer does all).
 * bt_watch_open tries them in that order unless one is named, and keeps the first that works.
 *
 * Files are watched by identity (dev, ino) and by path; directories by path (and identity).
 * Each event names what it knows: the file identity, or the directory and entry name, or both.
 * An overflow event means events were lost: the receiver rescans everything.
 */
#ifndef BT_WATCH_H
#define BT_WATCH_H

#include <stdint.h>
#include <sys/types.h>

enum {
    BT_WATCH_MODIFY = 1 << 0,   /* data written or file extended */
    BT_WATCH_CREATE = 1 << 1,   /* name created in a watched directory */
    BT_WATCH_MOVED = 1 << 2,    /* name renamed from/to a watched directory, or file renamed */
    BT_WATCH_DELETE = 1 << 3,   /* name unlinked, or the file's last link gone */
    BT_WATCH_TRUNCATE = 1 << 4, /* file truncated (or opened with O_TRUNC) */
    BT_WATCH_CLOSE = 1 << 5,    /* a writer closed the file */
    BT_WATCH_ATTRIB = 1 << 6,   /* chmod/chown */
    BT_WATCH_OPEN = 1 << 7,     /* opened (FIM read policy) */
    BT_WATCH_OVERFLOW = 1 << 8, /* events lost: rescan everything */
};

struct bt_watch_event {
    uint32_t mask;
    dev_t dev; /* file identity, 0 if unknown */
    ino_t ino;
    const char *dir;  /* watched directory path, or NULL */
    const char *name; /* entry name within dir, or NULL */
    /* Process context; only the BPF watcher fills these (pid 0 = unknown). */
    uint32_t pid, tgid, ppid, uid;
    uint64_t cgroup_id;
    const char *comm;
};

typedef void (*bt_watch_fn)(void *ctx, const struct bt_watch_event *ev);

struct bt_watch;

struct bt_watch_ops {
    const char *name;
    /* Sets up the backend; w->impl may be set. 0 or -errno (-EPERM, -ENOTSUP: try the next). */
    int (*open)(struct bt_watch *w);
    void (*close)(struct bt_watch *w);
    int (*add_file)(struct bt_watch *w, const char *path, dev_t dev, ino_t ino);
    int (*remove_file)(struct bt_watch *w, dev_t dev, ino_t ino);
    int (*add_dir)(struct bt_watch *w, const char *path, dev_t dev, ino_t ino);
    int (*remove_dir)(struct bt_watch *w, const char *path);
    /* The fd to add to the loop (EPOLLIN), or -1 if the backend has none (poll). */
    int (*fd)(struct bt_watch *w);
    /* Reads what is pending and calls w->fn per event. 0 or -errno. */
    int (*dispatch)(struct bt_watch *w);
};

struct bt_watch;
struct bt_loop;
struct bt_watch_interim;

/* Called on the loop thread right after a watch switched backends (see bt_watch_open_loop):
 * every watch is already registered with the new backend. The owner moves its loop
 * registration from old_fd to bt_watch_fd(w), then re-checks everything it tails once (events
 * the interim backend had queued are discarded with it). */
typedef void (*bt_watch_switch_fn)(void *ctx, struct bt_watch *w, int old_fd);

struct bt_watch {
    const struct bt_watch_ops *ops;
    void *impl;
    bt_watch_fn fn;
    void *ctx;
    uint64_t events; /* delivered events, for metrics */
    uint64_t lost;   /* overflows seen */
    /* While BPF loads in the background: the watches to hand over (watch.c), else NULL. */
    struct bt_watch_interim *interim;
    bt_watch_switch_fn on_switch;
};

/* Opens the first backend that works, in order bpf, fanotify, inotify, poll; or only `prefer`
 * when it names one ("auto" or NULL for the chain). NULL with errno if none works. */
struct bt_watch *bt_watch_open(const char *prefer, bt_watch_fn fn, void *ctx);
/* Like bt_watch_open, but when the chain is automatic ("auto" or NULL) and loop is given, the
 * BPF programs are loaded on a background thread (bt_watch_bpf_load_async) and the next backend
 * of the chain that opens serves meanwhile. When the load succeeds, on the loop thread, the
 * watch switches to bpf: every current file and directory watch is registered with it,
 * on_switch runs, then the interim backend is closed. If the load fails the interim backend
 * stays. Without a background load (explicit backend, BPF already loaded or compiled out) this
 * is bt_watch_open. */
struct bt_watch *bt_watch_open_loop(const char *prefer, struct bt_loop *loop, bt_watch_fn fn,
                                    void *ctx, bt_watch_switch_fn on_switch);
/* 1 while the watch serves from an interim backend, waiting for BPF. */
int bt_watch_interim(const struct bt_watch *w);
void bt_watch_close(struct bt_watch *w);
const char *bt_watch_name(const struct bt_watch *w);
int bt_watch_add_file(struct bt_watch *w, const char *path, dev_t dev, ino_t ino);
int bt_watch_remove_file(struct bt_watch *w, dev_t dev, ino_t ino);
int bt_watch_add_dir(struct bt_watch *w, const char *path, dev_t dev, ino_t ino);
int bt_watch_remove_dir(struct bt_watch *w, const char *path);
int bt_watch_fd(struct bt_watch *w);
int bt_watch_dispatch(struct bt_watch *w);

/* The backends. A compiled-out backend's open returns -ENOTSUP. */
extern const struct bt_watch_ops bt_watch_bpf_ops;
extern const struct bt_watch_ops bt_watch_fanotify_ops;
extern const struct bt_watch_ops bt_watch_inotify_ops;
extern const struct bt_watch_ops bt_watch_poll_ops;

#endif
