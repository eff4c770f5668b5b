/* fanotify watcher: not implemented yet; says -ENOTSUP so the chain moves on. */
#include "watch.h"

#include <errno.h>

static int fan_open(struct bt_watch *w)
{
    (void)w;
    return -ENOTSUP;
}

const struct bt_watch_ops bt_watch_fanotify_ops = {
    .name = "fanotify",
    .open = fan_open,
};
