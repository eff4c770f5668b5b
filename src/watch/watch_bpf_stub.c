/* The BPF watcher when bpftail is built without BPF (-DBT_BPF=OFF): every call says -ENOTSUP,
 * so the watcher chain moves on to the next backend and callers need no #ifdefs. */
#include "watch/watch_bpf.h"

#include <errno.h>
#include <stddef.h>

static int stub_open(struct bt_watch *w)
{
    (void)w;
    return -ENOTSUP;
}

const struct bt_watch_ops bt_watch_bpf_ops = {
    .name = "bpf",
    .open = stub_open,
};

int bt_watch_bpf_set_ops(struct bt_watch *w, uint32_t ops)
{
    (void)w;
    (void)ops;
    return -ENOTSUP;
}

int bt_watch_bpf_ignore_tgid(struct bt_watch *w, uint32_t tgid)
{
    (void)w;
    (void)tgid;
    return -ENOTSUP;
}

const struct bt_watch_bpf_info *bt_watch_bpf_current(const struct bt_watch *w)
{
    (void)w;
    return NULL;
}

int bt_watch_bpf_stats(struct bt_watch *w, uint64_t *events, uint64_t *drops)
{
    (void)w;
    (void)events;
    (void)drops;
    return -ENOTSUP;
}

void bt_watch_bpf_refuse(int err)
{
    (void)err;
}

void bt_watch_bpf_set_ring_size(uint32_t bytes)
{
    (void)bytes;
}

int bt_watch_bpf_load_async(struct bt_loop *loop)
{
    (void)loop;
    return -ENOTSUP;
}

int bt_watch_bpf_when_loaded(void (*fn)(void *ctx, int rc), void *ctx)
{
    (void)fn;
    (void)ctx;
    return -ENOENT;
}

int bt_watch_bpf_loading(void)
{
    return 0;
}

void bt_watch_bpf_load_abandon(void) {}

int bt_watch_bpf_add_alias(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    (void)w;
    (void)path;
    (void)dev;
    (void)ino;
    return -ENOTSUP;
}

int bt_watch_bpf_remove_alias(struct bt_watch *w, const char *path, dev_t dev, ino_t ino)
{
    (void)w;
    (void)path;
    (void)dev;
    (void)ino;
    return -ENOTSUP;
}
