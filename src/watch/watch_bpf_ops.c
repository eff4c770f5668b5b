/* Names of BPF file-event operations; compiled with and without BPF (see watch_bpf.h). */
#include <errno.h>
#include <string.h>

#include "watch/watch_bpf.h"

static const char *const op_names[BT_FE_OP_MAX] = {
    [BT_FE_WRITE] = "write",       [BT_FE_CREATE] = "create",
    [BT_FE_TRUNCATE] = "truncate", [BT_FE_RENAME] = "rename",
    [BT_FE_UNLINK] = "unlink",     [BT_FE_RMDIR] = "rmdir",
    [BT_FE_OPEN] = "open",         [BT_FE_CLOSE_WRITE] = "close_write",
    [BT_FE_CHMOD] = "chmod",       [BT_FE_CHOWN] = "chown",
    [BT_FE_DIRTY] = "dirty",       [BT_FE_LINK] = "link",
};

const char *bt_fe_op_name(uint32_t op)
{
    if (op < BT_FE_OP_MAX && op_names[op])
        return op_names[op];
    return "unknown";
}

int bt_fe_op_parse(const char *s, uint32_t *mask)
{
    if (strcmp(s, "read") == 0) {
        *mask = BT_FE_OPBIT(BT_FE_OPEN);
        return 0;
    }
    if (strcmp(s, "attrib") == 0) {
        *mask = BT_FE_OPBIT(BT_FE_CHMOD) | BT_FE_OPBIT(BT_FE_CHOWN);
        return 0;
    }
    if (strcmp(s, "delete") == 0) {
        *mask = BT_FE_OPBIT(BT_FE_UNLINK) | BT_FE_OPBIT(BT_FE_RMDIR);
        return 0;
    }
    for (uint32_t op = 1; op < BT_FE_OP_MAX; op++) {
        if (op_names[op] && strcmp(s, op_names[op]) == 0) {
            *mask = BT_FE_OPBIT(op);
            return 0;
        }
    }
    return -EINVAL;
}
