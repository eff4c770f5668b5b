/* watch: picks a backend (bpf, fanotify, inotify, poll, or the one named) and forwards calls to
 * it. A backend that leaves an operation out treats it as done. */
#include "watch/watch.h"

#include "util/log.h"

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

void bt_watch_close(struct bt_watch *w)
{
    if (!w)
        return;
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
    return w->ops->add_file ? w->ops->add_file(w, path, dev, ino) : 0;
}

int bt_watch_remove_file(struct bt_watch *w, dev_t dev, ino_t ino)
{
    return w->ops->remove_file ? w->ops->remove_file(w, dev, ino) : 0;
}

int bt_watch_add_dir(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    return w->ops->add_dir ? w->ops->add_dir(w, path, dev, ino) : 0;
}

int bt_watch_remove_dir(struct bt_watch *w, const char *path)
{
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
