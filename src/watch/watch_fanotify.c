/*
 * watch_fanotify: the fanotify watcher backend (struct bt_watch_ops "fanotify"), second in
 * the chain after BPF.
 *
 * Uses file-id reporting (FAN_REPORT_FID | FAN_REPORT_DFID_NAME, Linux 5.9+) with inode marks
 * only, which also works without privileges on 5.13+. Events carry file handles, not fds:
 * each watched file and directory is remembered by its handle (fsid + name_to_handle_at), so
 * no open_by_handle_at (and no CAP_DAC_READ_SEARCH) is needed. Marks are placed and removed
 * through a read-only descriptor held per watch (fanotify refuses O_PATH ones), so removing a
 * rotated file's watch never hits the new file that took its path. Queued events for one object are
 * merged by the kernel (MODIFY|CLOSE_WRITE): they are hints, never counts. mmap stores are
 * invisible here.
 */
#include "watch/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "util/hmap.h"
#include "util/log.h"

#define FAN_FILE_MASK (FAN_MODIFY | FAN_CLOSE_WRITE | FAN_ATTRIB | FAN_DELETE_SELF | FAN_MOVE_SELF)
#define FAN_DIR_MASK                                                                               \
    (FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_MODIFY | FAN_CLOSE_WRITE |      \
     FAN_ATTRIB | FAN_EVENT_ON_CHILD | FAN_ONDIR)
#define HANDLE_MAX 128
#define KEY_MAX (sizeof(fsid_t) + sizeof(int) + HANDLE_MAX)

struct fan_ent {
    int kind; /* 1 file, 2 dir */
    int pathfd;
    dev_t dev;
    ino_t ino;
    char *path;
    unsigned char key[KEY_MAX];
    size_t klen;
};

struct fan {
    int fd;
    struct bt_hmap by_handle; /* key bytes -> fan_ent */
    struct bt_hmap dirs;      /* path -> fan_ent (borrowed from by_handle) */
    unsigned char buf[16384] __attribute__((aligned(8)));
};

static struct fan *impl(struct bt_watch *w)
{
    return w ? w->impl : NULL;
}

/* Handle key: fsid, handle type, handle bytes (the same layout the kernel reports). */
static int make_key(const char *path, unsigned char *key, size_t *klen)
{
    struct {
        struct file_handle fh;
        unsigned char bytes[HANDLE_MAX];
    } h;
    struct statfs sfs;
    int mount_id;

    h.fh.handle_bytes = HANDLE_MAX;
    if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0)
        return -errno;
    if (statfs(path, &sfs) < 0)
        return -errno;
    if (h.fh.handle_bytes > HANDLE_MAX)
        return -EOVERFLOW;
    memcpy(key, &sfs.f_fsid, sizeof(fsid_t));
    memcpy(key + sizeof(fsid_t), &h.fh.handle_type, sizeof(int));
    memcpy(key + sizeof(fsid_t) + sizeof(int), h.fh.f_handle, h.fh.handle_bytes);
    *klen = sizeof(fsid_t) + sizeof(int) + h.fh.handle_bytes;
    return 0;
}

/* Files keep no descriptor once marked (a tailed file would otherwise cost two, and 10,000
 * files twice the descriptor limit): their mark is removed through the path while it still
 * names the same inode. A file that left its path keeps its mark until the kernel frees the
 * inode; its events find no entry and are dropped. Directories keep theirs. */
static void ent_unmark_file(struct fan *f, struct fan_ent *e)
{
    struct stat st;
    int fd = open(e->path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fstat(fd, &st) == 0 && st.st_dev == e->dev && st.st_ino == e->ino)
        fanotify_mark(f->fd, FAN_MARK_REMOVE, FAN_FILE_MASK, fd, NULL);
    close(fd);
}

static void ent_free(struct fan *f, struct fan_ent *e, int unmark)
{
    if (unmark && e->pathfd >= 0)
        fanotify_mark(f->fd, FAN_MARK_REMOVE, e->kind == 1 ? FAN_FILE_MASK : FAN_DIR_MASK,
                      e->pathfd, NULL);
    else if (unmark && e->kind == 1 && e->path)
        ent_unmark_file(f, e);
    if (e->pathfd >= 0)
        close(e->pathfd);
    free(e->path);
    free(e);
}

static int fan_open(struct bt_watch *w)
{
    struct fan *f = calloc(1, sizeof(*f));
    int rc;

    if (!f)
        return -ENOMEM;
    f->fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_REPORT_FID |
                              FAN_REPORT_DFID_NAME,
                          O_RDONLY | O_LARGEFILE | O_CLOEXEC);
    if (f->fd < 0) {
        rc = errno == EINVAL ? -ENOTSUP : -errno;
        BT_INFO("watch", "fanotify watcher unavailable, using the next watcher", "err=%d", rc);
        free(f);
        return rc;
    }
    bt_hmap_init(&f->by_handle);
    bt_hmap_init(&f->dirs);
    w->impl = f;
    BT_INFO("watch", "fanotify watcher ready", NULL);
    return 0;
}

static void fan_close(struct bt_watch *w)
{
    struct fan *f = impl(w);
    struct bt_hmap_slot *s;
    size_t pos = 0;

    if (!f)
        return;
    while ((s = bt_hmap_next(&f->by_handle, &pos)))
        ent_free(f, s->val, 0);
    bt_hmap_free(&f->by_handle);
    bt_hmap_free(&f->dirs);
    close(f->fd);
    free(f);
    w->impl = NULL;
}

static int add(struct bt_watch *w, int kind, const char *path, dev_t dev, ino_t ino)
{
    struct fan *f = impl(w);
    struct fan_ent *e, *old = NULL;
    struct stat st;
    int rc = 0;

    if (!f || !path)
        return -EINVAL;
    e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->kind = kind;
    /* fanotify_mark(dirfd, NULL) refuses O_PATH descriptors (EBADF): a real open it is. */
    e->pathfd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (e->pathfd < 0 || fstat(e->pathfd, &st) < 0) {
        rc = -errno;
        goto fail;
    }
    /* The caller's identity wins: if the path already names another inode, skip it. */
    if ((dev || ino) && (st.st_dev != dev || st.st_ino != ino)) {
        rc = -ESTALE;
        goto fail;
    }
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->path = strdup(path);
    if (!e->path) {
        rc = -ENOMEM;
        goto fail;
    }
    rc = make_key(path, e->key, &e->klen);
    if (rc < 0)
        goto fail;
    if (fanotify_mark(f->fd, FAN_MARK_ADD, kind == 1 ? FAN_FILE_MASK : FAN_DIR_MASK, e->pathfd,
                      NULL) < 0) {
        rc = -errno;
        goto fail;
    }
    if (kind == 1) {
        close(e->pathfd);
        e->pathfd = -1;
    }
    rc = bt_hmap_put(&f->by_handle, e->key, e->klen, e, (void **)&old);
    if (rc < 0)
        goto fail;
    if (old) {
        if (old->kind == 2)
            bt_hmap_del(&f->dirs, old->path, strlen(old->path));
        ent_free(f, old, 0);
    }
    if (kind == 2 && (rc = bt_hmap_put(&f->dirs, path, strlen(path), e, NULL)) < 0)
        return rc;
    return 0;
fail:
    ent_free(f, e, 0);
    return rc;
}

static int fan_add_file(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    return add(w, 1, path, dev, ino);
}

static int fan_add_dir(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    return add(w, 2, path, dev, ino);
}

static int fan_remove_file(struct bt_watch *w, dev_t dev, ino_t ino)
{
    struct fan *f = impl(w);
    struct bt_hmap_slot *s;
    size_t pos = 0;

    if (!f)
        return -EINVAL;
    while ((s = bt_hmap_next(&f->by_handle, &pos))) {
        struct fan_ent *e = s->val;
        if (e->kind == 1 && e->dev == dev && e->ino == ino) {
            bt_hmap_del(&f->by_handle, s->key, s->klen);
            ent_free(f, e, 1);
            return 0;
        }
    }
    return -ENOENT;
}

static int fan_remove_dir(struct bt_watch *w, const char *path)
{
    struct fan *f = impl(w);
    struct fan_ent *e;

    if (!f || !path)
        return -EINVAL;
    e = bt_hmap_del(&f->dirs, path, strlen(path));
    if (!e)
        return -ENOENT;
    bt_hmap_del(&f->by_handle, e->key, e->klen);
    ent_free(f, e, 1);
    return 0;
}

static int fan_fd(struct bt_watch *w)
{
    struct fan *f = impl(w);

    return f ? f->fd : -1;
}

static uint32_t to_mask(uint64_t m)
{
    uint32_t r = 0;

    if (m & FAN_MODIFY)
        r |= BT_WATCH_MODIFY;
    if (m & FAN_CLOSE_WRITE)
        r |= BT_WATCH_CLOSE;
    if (m & FAN_CREATE)
        r |= BT_WATCH_CREATE;
    if (m & (FAN_DELETE | FAN_DELETE_SELF))
        r |= BT_WATCH_DELETE;
    if (m & (FAN_MOVED_FROM | FAN_MOVED_TO | FAN_MOVE_SELF))
        r |= BT_WATCH_MOVED;
    if (m & FAN_ATTRIB)
        r |= BT_WATCH_ATTRIB;
    if (m & FAN_Q_OVERFLOW)
        r |= BT_WATCH_OVERFLOW;
    return r;
}

/* Looks up the handle of a FID info record of len bytes at p; *name gets the entry name of a
 * DFID_NAME record. Records are not aligned in the read buffer: everything is copied out. */
static struct fan_ent *lookup(struct fan *f, const unsigned char *p, size_t len, const char **name)
{
    const size_t fsid_off = sizeof(struct fanotify_event_info_header);
    const size_t fh_off = offsetof(struct fanotify_event_info_fid, handle);
    const size_t bytes_off = fh_off + offsetof(struct file_handle, f_handle);
    unsigned char key[KEY_MAX];
    uint32_t hbytes;
    int htype;

    if (len < bytes_off)
        return NULL;
    memcpy(&hbytes, p + fh_off + offsetof(struct file_handle, handle_bytes), sizeof(hbytes));
    memcpy(&htype, p + fh_off + offsetof(struct file_handle, handle_type), sizeof(htype));
    if (hbytes > HANDLE_MAX || len < bytes_off + hbytes)
        return NULL;
    memcpy(key, p + fsid_off, sizeof(fsid_t));
    memcpy(key + sizeof(fsid_t), &htype, sizeof(int));
    memcpy(key + sizeof(fsid_t) + sizeof(int), p + bytes_off, hbytes);
    if (name) {
        const char *n = (const char *)p + bytes_off + hbytes;
        *name = memchr(n, '\0', len - bytes_off - hbytes) ? n : NULL;
    }
    return bt_hmap_get(&f->by_handle, key, sizeof(fsid_t) + sizeof(int) + hbytes);
}

/* One event of event_len bytes at p (metadata md already copied out). */
static void deliver(struct bt_watch *w, const struct fanotify_event_metadata *md,
                    const unsigned char *p)
{
    struct fan *f = impl(w);
    struct bt_watch_event ev = {0};
    const unsigned char *end = p + md->event_len;

    ev.mask = to_mask(md->mask);
    ev.pid = ev.tgid = md->pid > 0 ? (uint32_t)md->pid : 0;
    p += md->metadata_len;
    while (p + sizeof(struct fanotify_event_info_header) <= end) {
        struct fanotify_event_info_header h;
        const char *name = NULL;
        struct fan_ent *e;

        memcpy(&h, p, sizeof(h));
        if (h.len < sizeof(h) || p + h.len > end)
            break;
        if (h.info_type == FAN_EVENT_INFO_TYPE_FID) {
            e = lookup(f, p, h.len, NULL);
            if (e && e->kind == 1) {
                ev.dev = e->dev;
                ev.ino = e->ino;
            }
        } else if (h.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) {
            e = lookup(f, p, h.len, &name);
            if (e && e->kind == 2 && name && strcmp(name, ".") != 0) {
                ev.dir = e->path;
                ev.name = name;
            }
        }
        p += h.len;
    }
    if (!ev.mask || (!(ev.mask & BT_WATCH_OVERFLOW) && !ev.ino && !ev.dir))
        return;
    if (ev.mask & BT_WATCH_OVERFLOW)
        w->lost++;
    w->events++;
    w->fn(w->ctx, &ev);
}

static int fan_dispatch(struct bt_watch *w)
{
    struct fan *f = impl(w);
    struct fanotify_event_metadata md;
    ssize_t n;

    if (!f)
        return -EINVAL;
    for (;;) {
        size_t off = 0;
        n = read(f->fd, f->buf, sizeof(f->buf));
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0)
            return 0;
        while ((size_t)n - off >= sizeof(md)) {
            memcpy(&md, f->buf + off, sizeof(md));
            if (md.event_len < sizeof(md) || md.event_len > (size_t)n - off ||
                md.metadata_len < sizeof(md) || md.metadata_len > md.event_len)
                break;
            if (md.vers != FANOTIFY_METADATA_VERSION)
                return -EPROTO;
            deliver(w, &md, f->buf + off);
            if (md.fd >= 0)
                close(md.fd); /* never in FID mode, but never leak one */
            off += md.event_len;
        }
    }
}

const struct bt_watch_ops bt_watch_fanotify_ops = {
    .name = "fanotify",
    .open = fan_open,
    .close = fan_close,
    .add_file = fan_add_file,
    .remove_file = fan_remove_file,
    .add_dir = fan_add_dir,
    .remove_dir = fan_remove_dir,
    .fd = fan_fd,
    .dispatch = fan_dispatch,
};
