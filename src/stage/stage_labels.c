/* labels: sets labels from extracted values ({name: source}; empty source = same name).
 * A value that is absent, not convertible to text (null, object) or not valid UTF-8 is
 * skipped, as promtail does. */
#include "stage/stage.h"

static enum bt_stage_result labels_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    char tmp[BT_STAGE_LABELMAP_TMP];
    const struct bt_stage_kv *kv;
    const char *v;
    size_t i = 0, n;
    while ((kv = bt_stage_labelmap_next(st, e, &i, tmp, &v, &n)) != NULL) {
        struct bt_labels *l = bt_pentry_labels_mut(e);
        if (l)
            bt_labels_setn(l, kv->name, kv->name_len, v, n);
    }
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_labels_ops = {
    .name = "labels",
    .init = bt_stage_labelmap_new,
    .process = labels_process,
    .free = bt_stage_labelmap_free,
    .reads = bt_stage_labelmap_reads,
};
