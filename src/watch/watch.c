/* watch: picks a backend (bpf, fanotify, inotify, poll, or the one named) and forwards calls to
 * it. A backend that leaves an operation out treats it as done. */
#include "watch/watch.h"

#include "util/hmap.h"
#include "util/log.h"
#include "watch/watch_bpf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const struct bt_watch_ops *const chain[] = {
    &bt_watch_bpf_ops,
    &bt_watch_fanotify_ops,
    &bt_watch_inotify_ops,
    &bt_watch_poll_ops,
};
#define NCHAIN (sizeof(chain) / sizeof(chain[0]))

struct bt_watch *bt_watch_open(const char *prefer, bt_watch_fn fn, void *ctx)
{
    bool any = !prefer || !prefer[0] || strcmp(prefer, "auto") == 0;
    bool known = any;
    int last = -ENOTSUP;
    struct bt_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->fn = fn;
    w->ctx = ctx;
    for (size_t i = 0; i < NCHAIN; i++) {
        if (!any && strcmp(prefer, chain[i]->name) != 0)
            continue;
        known = true;
        w->ops = chain[i];
        w->impl = NULL;
        int rc = chain[i]->open(w);
        if (rc == 0) {
            BT_INFO("watch", "file watcher ready", "backend=%s", chain[i]->name);
            return w;
        }
        last = rc;
        BT_DEBUG("watch", "watcher backend unavailable", "backend=%s err=%s", chain[i]->name,
                 strerror(-rc));
    }
    free(w);
    errno = known ? -last : EINVAL;
    return NULL;
}

/* What an interim watch must hand over to bpf: every file and directory watched now. */
struct bt_watch_interim {
    struct bt_hmap files; /* struct id -> path (strdup, may be NULL) */
    struct bt_hmap dirs;  /* path -> struct id */
};

struct id {
    dev_t dev;
    ino_t ino;
};

static void interim_free(struct bt_watch_interim *im)
{
    struct bt_hmap_slot *sl;
    size_t pos = 0;

    if (!im)
        return;
    while ((sl = bt_hmap_next(&im->files, &pos)))
        free(sl->val);
    bt_hmap_free(&im->files);
    pos = 0;
    while ((sl = bt_hmap_next(&im->dirs, &pos)))
        free(sl->val);
    bt_hmap_free(&im->dirs);
    free(im);
}

/* The background load finished: move the watches to bpf, let the owner re-check, close the
 * interim backend. On failure, keep the interim backend for good. */
static void on_bpf_loaded(void *arg, int rc)
{
    struct bt_watch *w = arg;
    struct bt_watch_interim *im = w->interim;
    struct bt_watch old = *w;
    struct bt_hmap_slot *sl;
    size_t pos = 0;
    int old_fd = bt_watch_fd(w);

    w->interim = NULL;
    if (rc == 0) {
        w->ops = &bt_watch_bpf_ops;
        w->impl = NULL;
        rc = w->ops->open(w);
    }
    if (rc < 0) {
        w->ops = old.ops;
        w->impl = old.impl;
        BT_INFO("watch", "file watcher stays", "backend=%s err=%s", old.ops->name, strerror(-rc));
        interim_free(im);
        /* The watch has settled on its interim backend: the owner is told as for a switch. */
        if (w->on_switch)
            w->on_switch(w->ctx, w, old_fd);
        return;
    }
    while ((sl = bt_hmap_next(&im->files, &pos))) {
        const struct id *k = (const struct id *)sl->key;
        if (w->ops->add_file(w, sl->val, k->dev, k->ino) < 0)
            BT_DEBUG("watch", "bpf: file watch not handed over", "path=%s",
                     sl->val ? (char *)sl->val : "");
    }
    pos = 0;
    while ((sl = bt_hmap_next(&im->dirs, &pos))) {
        const struct id *k = sl->val;
        if (w->ops->add_dir(w, sl->key, k->dev, k->ino) < 0)
            BT_DEBUG("watch", "bpf: directory watch not handed over", "path=%s", (char *)sl->key);
    }
    interim_free(im);
    BT_INFO("watch", "file watcher ready", "backend=%s previous=%s", w->ops->name, old.ops->name);
    /* From here bpf sees every change; the owner's re-check covers what came before. */
    if (w->on_switch)
        w->on_switch(w->ctx, w, old_fd);
    if (old.ops->close)
        old.ops->close(&old);
}

struct bt_watch *bt_watch_open_loop(const char *prefer, struct bt_loop *loop, bt_watch_fn fn,
                                    void *ctx, bt_watch_switch_fn on_switch)
{
    bool any = !prefer || !prefer[0] || strcmp(prefer, "auto") == 0;
    struct bt_watch *w;
    int last = -ENOTSUP;

    int rc = any && loop ? bt_watch_bpf_load_async(loop) : -ENOTSUP;

    if (rc < 0 && !(rc == -EALREADY && bt_watch_bpf_loading())) /* loaded, failed, or none */
        return bt_watch_open(prefer, fn, ctx);
    w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->fn = fn;
    w->ctx = ctx;
    w->on_switch = on_switch;
    w->interim = calloc(1, sizeof(*w->interim));
    if (!w->interim)
        goto fail;
    bt_hmap_init(&w->interim->files);
    bt_hmap_init(&w->interim->dirs);
    for (size_t i = 1; i < NCHAIN; i++) {
        w->ops = chain[i];
        w->impl = NULL;
        last = chain[i]->open(w);
        if (last == 0)
            break;
    }
    if (last < 0)
        goto fail;
    if ((last = bt_watch_bpf_when_loaded(on_bpf_loaded, w)) < 0) {
        w->ops->close(w);
        goto fail;
    }
    BT_INFO("watch", "file watcher ready", "backend=%s until=bpf", w->ops->name);
    return w;
fail:
    interim_free(w->interim);
    free(w);
    errno = -last;
    return NULL;
}

int bt_watch_interim(const struct bt_watch *w)
{
    return w && w->interim != NULL;
}

void bt_watch_close(struct bt_watch *w)
{
    if (!w)
        return;
    if (w->interim) {
        /* Closed while BPF loads: forget the switch (the load itself finishes on its own). */
        bt_watch_bpf_load_abandon();
        interim_free(w->interim);
    }
    if (w->ops->close)
        w->ops->close(w);
    free(w);
}

const char *bt_watch_name(const struct bt_watch *w)
{
    return w->ops->name;
}

int bt_watch_add_file(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    if (w->interim) {
        struct id k = {dev, ino};
        char *p = path ? strdup(path) : NULL, *old = NULL;
        if ((path && !p) || bt_hmap_put(&w->interim->files, &k, sizeof(k), p, (void **)&old) < 0) {
            free(p);
            return -ENOMEM;
        }
        free(old);
    }
    return w->ops->add_file ? w->ops->add_file(w, path, dev, ino) : 0;
}

int bt_watch_remove_file(struct bt_watch *w, dev_t dev, ino_t ino)
{
    if (w->interim) {
        struct id k = {dev, ino};
        free(bt_hmap_del(&w->interim->files, &k, sizeof(k)));
    }
    return w->ops->remove_file ? w->ops->remove_file(w, dev, ino) : 0;
}

int bt_watch_add_dir(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    if (w->interim && path) {
        struct id *k = malloc(sizeof(*k)), *old = NULL;
        if (!k)
            return -ENOMEM;
        k->dev = dev;
        k->ino = ino;
        if (bt_hmap_put(&w->interim->dirs, path, strlen(path), k, (void **)&old) < 0) {
            free(k);
            return -ENOMEM;
        }
        free(old);
    }
    return w->ops->add_dir ? w->ops->add_dir(w, path, dev, ino) : 0;
}

int bt_watch_remove_dir(struct bt_watch *w, const char *path)
{
    if (w->interim && path)
        free(bt_hmap_del(&w->interim->dirs, path, strlen(path)));
    return w->ops->remove_dir ? w->ops->remove_dir(w, path) : 0;
}

int bt_watch_fd(struct bt_watch *w)
{
    return w->ops->fd ? w->ops->fd(w) : -1;
}

int bt_watch_dispatch(struct bt_watch *w)
{
    return w->ops->dispatch ? w->ops->dispatch(w) : 0;
}
