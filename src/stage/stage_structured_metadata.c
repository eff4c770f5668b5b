/* structured_metadata (alias non_indexed_labels): like labels, but writes the entry's
 * structured metadata; a stream label with the same name and value is removed so the pair is
 * not sent twice. */
#include "stage/stage.h"

#include <string.h>

static enum bt_stage_result sm_process(void *st, struct bt_pentry *e, struct bt_stage_out *o)
{
    char tmp[BT_STAGE_LABELMAP_TMP];
    const struct bt_stage_kv *kv;
    const char *v;
    size_t i = 0, n;
    while ((kv = bt_stage_labelmap_next(st, e, &i, tmp, &v, &n)) != NULL) {
        if (bt_labels_setn(&e->meta, kv->name, kv->name_len, v, n) < 0)
            continue;
        const char *lv = e->labels ? bt_labels_getn(e->labels, kv->name, kv->name_len) : NULL;
        if (lv && strlen(lv) == n && memcmp(lv, v, n) == 0) {
            struct bt_labels *l = bt_pentry_labels_mut(e);
            if (l)
                bt_labels_del(l, kv->name);
        }
    }
    return BT_STAGE_KEEP;
}

const struct bt_stage_ops bt_stage_structured_metadata_ops = {
    .name = "structured_metadata",
    .init = bt_stage_labelmap_new,
    .process = sm_process,
    .free = bt_stage_labelmap_free,
    .reads = bt_stage_labelmap_reads,
};
