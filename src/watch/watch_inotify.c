/*
 * inotify watcher: directories report names created, moved and deleted; files report writes,
 * closes, attribute changes (a link count change is one), their own deletion and renames.
 *
 * inotify watches inodes, so a watch added by path may land on a different file than the one
 * the caller holds open if the name was replaced in between: add_file checks the identity and
 * says -ESTALE then. Events are read until the non-blocking fd is empty; IN_Q_OVERFLOW becomes
 * BT_WATCH_OVERFLOW (the receiver rescans), IN_IGNORED forgets the watch.
 */
#include "watch/watch.h"

#include "util/hmap.h"
#include "util/log.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MASK (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)
#define DIR_MASK                                                                                   \
    (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF |         \
     IN_ONLYDIR)

struct wdent {
    int wd;
    bool dir;
    char *path;
    dev_t dev;
    ino_t ino;
    unsigned refs; /* add_file calls for this inode (several targets may tail one file) */
};

struct ino {
    int fd;
    struct bt_hmap by_wd;   /* int wd -> wdent */
    struct bt_hmap by_id;   /* dev,ino -> wdent (files) */
    struct bt_hmap by_path; /* dir path -> wdent */
    char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
};

struct idkey {
    dev_t dev;
    ino_t ino;
};

static void ent_free(struct ino *in, struct wdent *e)
{
    bt_hmap_del(&in->by_wd, &e->wd, sizeof(e->wd));
    if (e->dir) {
        struct wdent *cur = bt_hmap_get(&in->by_path, e->path, strlen(e->path));
        if (cur == e)
            bt_hmap_del(&in->by_path, e->path, strlen(e->path));
    } else {
        struct idkey k = {e->dev, e->ino};
        struct wdent *cur = bt_hmap_get(&in->by_id, &k, sizeof(k));
        if (cur == e)
            bt_hmap_del(&in->by_id, &k, sizeof(k));
    }
    free(e->path);
    free(e);
}

static int ino_open(struct bt_watch *w)
{
    struct ino *in = calloc(1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    in->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (in->fd < 0) {
        int rc = -errno;
        free(in);
        return rc;
    }
    bt_hmap_init(&in->by_wd);
    bt_hmap_init(&in->by_id);
    bt_hmap_init(&in->by_path);
    w->impl = in;
    return 0;
}

static void ino_close(struct bt_watch *w)
{
    struct ino *in = w->impl;
    if (!in)
        return;
    size_t it = 0;
    struct bt_hmap_slot *s;
    while ((s = bt_hmap_next(&in->by_wd, &it)) != NULL) {
        struct wdent *e = s->val;
        free(e->path);
        free(e);
    }
    bt_hmap_free(&in->by_wd);
    bt_hmap_free(&in->by_id);
    bt_hmap_free(&in->by_path);
    close(in->fd);
    free(in);
    w->impl = NULL;
}

/* Registers wd (new or already known for the same inode) under the given role. */
static int remember(struct ino *in, int wd, bool dir, const char *path, dev_t dev, ino_t ino)
{
    struct wdent *e = bt_hmap_get(&in->by_wd, &wd, sizeof(wd));
    if (e && e->dir != dir)
        return -EEXIST;
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return -ENOMEM;
        e->wd = wd;
        e->dir = dir;
        if (bt_hmap_put(&in->by_wd, &wd, sizeof(wd), e, NULL) < 0) {
            free(e);
            return -ENOMEM;
        }
    }
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    free(e->path);
    e->path = p;
    e->dev = dev;
    e->ino = ino;
    if (dir)
        return bt_hmap_put(&in->by_path, path, strlen(path), e, NULL);
    struct idkey k = {dev, ino};
    return bt_hmap_put(&in->by_id, &k, sizeof(k), e, NULL);
}

static int ino_add_file(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    struct ino *in = w->impl;
    struct idkey k = {dev, ino};
    struct wdent *have = bt_hmap_get(&in->by_id, &k, sizeof(k));
    if (have) {
        have->refs++;
        return 0;
    }
    int wd = inotify_add_watch(in->fd, path, FILE_MASK);
    if (wd < 0)
        return -errno;
    struct stat st;
    if (stat(path, &st) < 0 || st.st_dev != dev || st.st_ino != ino) {
        /* The name now points elsewhere; only drop the watch if nobody else uses it. */
        if (!bt_hmap_get(&in->by_wd, &wd, sizeof(wd)))
            inotify_rm_watch(in->fd, wd);
        return -ESTALE;
    }
    int rc = remember(in, wd, false, path, dev, ino);
    if (rc == 0)
        ((struct wdent *)bt_hmap_get(&in->by_wd, &wd, sizeof(wd)))->refs = 1;
    return rc;
}

static int ino_remove_file(struct bt_watch *w, dev_t dev, ino_t ino)
{
    struct ino *in = w->impl;
    struct idkey k = {dev, ino};
    struct wdent *e = bt_hmap_get(&in->by_id, &k, sizeof(k));
    if (!e)
        return -ENOENT;
    if (e->refs > 1) {
        e->refs--;
        return 0;
    }
    inotify_rm_watch(in->fd, e->wd);
    ent_free(in, e);
    return 0;
}

static int ino_add_dir(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    struct ino *in = w->impl;
    if (bt_hmap_get(&in->by_path, path, strlen(path)))
        return 0;
    int wd = inotify_add_watch(in->fd, path, DIR_MASK);
    if (wd < 0)
        return -errno;
    return remember(in, wd, true, path, dev, ino);
}

static int ino_remove_dir(struct bt_watch *w, const char *path)
{
    struct ino *in = w->impl;
    struct wdent *e = bt_hmap_get(&in->by_path, path, strlen(path));
    if (!e)
        return -ENOENT;
    inotify_rm_watch(in->fd, e->wd);
    ent_free(in, e);
    return 0;
}

static int ino_fd(struct bt_watch *w)
{
    return ((struct ino *)w->impl)->fd;
}

static uint32_t translate(uint32_t m)
{
    uint32_t out = 0;
    if (m & IN_MODIFY)
        out |= BT_WATCH_MODIFY;
    if (m & IN_CREATE)
        out |= BT_WATCH_CREATE;
    if (m & (IN_MOVED_TO | IN_MOVED_FROM | IN_MOVE_SELF))
        out |= BT_WATCH_MOVED;
    if (m & (IN_DELETE | IN_DELETE_SELF))
        out |= BT_WATCH_DELETE;
    if (m & IN_CLOSE_WRITE)
        out |= BT_WATCH_CLOSE;
    if (m & IN_ATTRIB)
        out |= BT_WATCH_ATTRIB;
    return out;
}

static void deliver(struct bt_watch *w, const struct inotify_event *ev)
{
    struct ino *in = w->impl;
    struct bt_watch_event out = {0};
    if (ev->mask & IN_Q_OVERFLOW) {
        w->lost++;
        out.mask = BT_WATCH_OVERFLOW;
        w->events++;
        w->fn(w->ctx, &out);
        return;
    }
    struct wdent *e = bt_hmap_get(&in->by_wd, &ev->wd, sizeof(ev->wd));
    if (!e)
        return;
    if (ev->mask & IN_IGNORED) {
        ent_free(in, e); /* the inode is gone or the watch was removed */
        return;
    }
    out.mask = translate(ev->mask);
    if (!out.mask)
        return;
    if (e->dir) {
        out.dir = e->path;
        out.name = ev->len ? ev->name : NULL;
    } else {
        out.dev = e->dev;
        out.ino = e->ino;
    }
    w->events++;
    w->fn(w->ctx, &out);
}

static int ino_dispatch(struct bt_watch *w)
{
    struct ino *in = w->impl;
    for (;;) {
        ssize_t n = read(in->fd, in->buf, sizeof(in->buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? 0 : -errno;
        if (n == 0)
            return 0;
        for (char *p = in->buf; p < in->buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof(*ev) + ev->len;
            deliver(w, ev);
        }
    }
}

const struct bt_watch_ops bt_watch_inotify_ops = {
    .name = "inotify",
    .open = ino_open,
    .close = ino_close,
    .add_file = ino_add_file,
    .remove_file = ino_remove_file,
    .add_dir = ino_add_dir,
    .remove_dir = ino_remove_dir,
    .fd = ino_fd,
    .dispatch = ino_dispatch,
};
