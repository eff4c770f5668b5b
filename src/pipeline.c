/* Placeholder pipeline: passes entries through. The stages issue replaces this file with the
 * real stage runner; until then any configured stage is a clear error. */
#include "pipeline.h"
#include "node.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct bt_pipeline {
    bt_entry_sink_fn sink;
    void *ctx;
};

struct bt_pipeline *bt_pipeline_new(const struct bt_node *stages, const char *job,
                                    struct bt_metrics *m, bt_entry_sink_fn sink, void *ctx,
                                    char *err, size_t errlen)
{
    if (stages && !bt_node_is_null(stages) && !(stages->type == BT_NODE_SEQ && stages->n == 0)) {
        char where[256];
        snprintf(err, errlen, "%s: pipeline_stages are not supported yet (job %s)",
                 bt_node_where(stages, where, sizeof(where)), job ? job : "");
        errno = EINVAL;
        return NULL;
    }
    struct bt_pipeline *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->sink = sink;
    p->ctx = ctx;
    return p;
}

void bt_pipeline_free(struct bt_pipeline *p)
{
    free(p);
}

void bt_pipeline_process(struct bt_pipeline *p, const struct bt_entry *e)
{
    p->sink(p->ctx, e);
}

int64_t bt_pipeline_deadline(const struct bt_pipeline *p)
{
    return INT64_MAX;
}

void bt_pipeline_tick(struct bt_pipeline *p, int64_t now_mono) {}

void bt_pipeline_flush(struct bt_pipeline *p) {}

void bt_pipeline_set_inspect(struct bt_pipeline *p, FILE *f) {}
