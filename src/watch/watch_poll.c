/* poll watcher: no kernel events at all. It always works, so it ends the chain; the files
 * module then runs its own content poll timer and the reconcile timer finds new files. */
#include "watch/watch.h"

static int poll_open(struct bt_watch *w)
{
    (void)w;
    return 0;
}

static int poll_fd(struct bt_watch *w)
{
    (void)w;
    return -1;
}

const struct bt_watch_ops bt_watch_poll_ops = {
    .name = "poll",
    .open = poll_open,
    .fd = poll_fd,
};
