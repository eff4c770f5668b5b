/* watch_bpf_events: matching decoded ring records to a consumer's watches (see watch_bpf_int.h). */
#include "watch/watch_bpf_int.h"

#include <stdio.h>
#include <string.h>

/* The consumer's entry for {dev, ino} of this kind that asked for op, or NULL. */
static const struct ino_ent *ino_find(struct bpfw *b, uint32_t dev, uint64_t ino, uint32_t kind,
                                      uint32_t op)
{
    struct fe_key k = {.ino = ino, .dev = dev, .pad = 0};
    const struct ino_ent *ie = bt_hmap_get(&b->inodes, &k, sizeof(k));

    return ie && ie->kind == kind && (ie->ops & FE_OPBIT(op)) ? ie : NULL;
}

/* Whether the consumer watches path as a file, or its directory part, for op. */
static int path_wanted(struct bpfw *b, const char *path, size_t dirlen, uint32_t op)
{
    const struct path_ent *pe = bt_hmap_get(&b->paths, path, strlen(path));

    if (pe && pe->file_refs > 0 && (pe->file_ops & FE_OPBIT(op)))
        return 1;
    pe = bt_hmap_get(&b->paths, path, dirlen ? dirlen : 1);
    return pe && pe->dir_refs > 0 && (pe->dir_ops & FE_OPBIT(op));
}

uint32_t wb_op_mask(uint32_t op)
{
    switch (op) {
    case FE_OP_WRITE:
    case FE_OP_DIRTY: return BT_WATCH_MODIFY;
    case FE_OP_CREATE:
    case FE_OP_LINK: return BT_WATCH_CREATE;
    case FE_OP_TRUNCATE: return BT_WATCH_TRUNCATE;
    case FE_OP_RENAME: return BT_WATCH_MOVED;
    case FE_OP_UNLINK:
    case FE_OP_RMDIR: return BT_WATCH_DELETE;
    case FE_OP_CLOSE_WRITE: return BT_WATCH_CLOSE;
    case FE_OP_OPEN: return BT_WATCH_OPEN;
    default: return BT_WATCH_ATTRIB;
    }
}

static const char *join(char *out, size_t outlen, const char *dir, const char *name)
{
    int n = snprintf(out, outlen, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);

    return n > 0 && (size_t)n < outlen ? out : NULL;
}

static void deliver(struct bpfw *b, const struct bt_watch_event *ev,
                    const struct bt_watch_bpf_info *info)
{
    b->cur = info;
    b->w->fn(b->w->ctx, ev);
    b->cur = NULL;
    b->w->events++;
}

/* Offers one name given as a path argument to a consumer. Returns 1 if delivered. */
static int deliver_name(struct bpfw *b, struct bt_watch_event *ev, struct bt_watch_bpf_info *info,
                        const struct fe_event *e, const char *name)
{
    struct shared *s = b->s;
    const struct ino_ent *dir;
    const char *slash = strrchr(name, '/');

    if (name[0] == '/') {
        size_t dl = (size_t)(slash - name);
        if (dl >= sizeof(s->dirbuf) || !path_wanted(b, name, dl, e->op))
            return 0;
        memcpy(s->dirbuf, name, dl ? dl : 1);
        s->dirbuf[dl ? dl : 1] = '\0';
        ev->dir = s->dirbuf;
        ev->name = slash + 1;
        info->path = name;
    } else if (!slash && e->pino) {
        dir = ino_find(b, e->dev, e->pino, FE_W_DIR, e->op);
        if (!dir || !dir->path)
            return 0;
        ev->dir = dir->path;
        ev->name = name;
        info->path = join(s->pathbuf, sizeof(s->pathbuf), dir->path, name);
    } else {
        return 0;
    }
    deliver(b, ev, info);
    return 1;
}

/* Offers a record to one consumer: delivered if it watches what the record is about. */
void wb_offer(struct bpfw *b, const struct fe_event *e, struct bt_watch_event ev,
              struct bt_watch_bpf_info info)
{
    const struct ino_ent *file, *dir;
    int delivered;

    if (b->ignore_tgid && e->tgid == b->ignore_tgid)
        return;
    if (e->ino) {
        /* fd-based: the kernel resolved the file itself. */
        file = ino_find(b, e->dev, e->ino, FE_W_FILE, e->op);
        dir = (e->match & FE_M_PARENT) ? ino_find(b, e->dev, e->pino, FE_W_DIR, e->op) : NULL;
        if (!file && !dir)
            return;
        if (dir && dir->path) {
            ev.dir = dir->path;
            ev.name = e->name;
        }
        if (file && file->path)
            info.path = file->path;
        else if (dir && dir->path)
            info.path = join(b->s->pathbuf, sizeof(b->s->pathbuf), dir->path, e->name);
        deliver(b, &ev, &info);
        return;
    }
    /* Path-based: one event per name (a rename or a link tells about both). */
    delivered = deliver_name(b, &ev, &info, e, e->name);
    if ((e->op == FE_OP_RENAME || e->op == FE_OP_LINK) && e->name2[0]) {
        struct bt_watch_event ev2 = ev;
        struct bt_watch_bpf_info info2 = info;
        info2.rename_new = delivered;
        ev2.dir = ev2.name = NULL;
        info2.path = NULL;
        deliver_name(b, &ev2, &info2, e, e->name2);
    }
}
