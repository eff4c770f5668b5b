/* The BPF watcher when bpftail is built without BPF (-DBT_BPF=OFF): every call says -ENOTSUP,
 * so the watcher chain moves on to the next backend and callers need no #ifdefs. */
#include "watch.h"

#include <errno.h>

static int stub_open(struct bt_watch *w)
{
    (void)w;
    return -ENOTSUP;
}

const struct bt_watch_ops bt_watch_bpf_ops = {
    .name = "bpf",
    .open = stub_open,
};
