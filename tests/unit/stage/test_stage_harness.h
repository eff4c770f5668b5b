/*
 * A small harness for stage tests: builds a pipeline from YAML text (the pipeline_stages list),
 * pushes lines with given labels, and keeps owned copies of what reached the sink.
 * Header-only (static functions) so every stage test binary can include it.
 */
#ifndef BT_TEST_STAGE_HARNESS_H
#define BT_TEST_STAGE_HARNESS_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/entry.h"
#include "core/labels.h"
#include "core/metrics.h"
#include "config/node.h"
#include "stage/pipeline.h"

#define H_MAX_OUT 2048

struct h_out {
    struct bt_labels labels;
    struct bt_labels meta;
    char *line;
    size_t len;
    int64_t ts;
    struct bt_segment *seg;
    uint64_t stamp; /* the set's stamp as the sink saw it, with harness.stamps */
};

struct harness {
    struct bt_node *root;
    struct bt_metrics *m;
    struct bt_pipeline *p;
    struct bt_labels in; /* labels of pushed entries */
    struct h_out out[H_MAX_OUT];
    size_t n;
    bool stamps; /* the sink takes each set's canonical string and stamp, as the batcher does */
    char err[1024];
};

static void h_sink(void *ctx, const struct bt_entry *e)
{
    struct harness *h = ctx;
    cr_assert_lt(h->n, H_MAX_OUT);
    struct h_out *o = &h->out[h->n++];
    bt_labels_init(&o->labels);
    bt_labels_init(&o->meta);
    if (e->labels && h->stamps) {
        size_t len;
        cr_assert_not_null(bt_labels_canon(e->labels, &len));
        o->stamp = e->labels->stamp;
    }
    if (e->labels)
        bt_labels_copy(&o->labels, e->labels);
    for (size_t i = 0; i < e->n_meta; i++)
        bt_labels_setn(&o->meta, e->meta[i].name, e->meta[i].name_len, e->meta[i].value,
                       e->meta[i].value_len);
    o->line = malloc(e->line_len + 1);
    memcpy(o->line, e->line, e->line_len);
    o->line[e->line_len] = '\0';
    o->len = e->line_len;
    o->ts = e->ts_ns;
    o->seg = e->seg;
}

/* Builds the pipeline; returns 0, or -1 with the message in h->err. */
static int h_try(struct harness *h, const char *yaml)
{
    memset(h, 0, sizeof(*h));
    bt_labels_init(&h->in);
    h->m = bt_metrics_new();
    h->root = bt_yaml_parse(yaml, strlen(yaml), "pipeline.yaml", h->err, sizeof(h->err));
    if (!h->root && h->err[0])
        return -1;
    h->p = bt_pipeline_new(h->root, "test", h->m, h_sink, h, h->err, sizeof(h->err));
    return h->p ? 0 : -1;
}

static void h_new(struct harness *h, const char *yaml)
{
    int rc = h_try(h, yaml);
    cr_assert_eq(rc, 0, "pipeline failed to build: %s", h->err);
}

static void h_push_seg(struct harness *h, const char *line, int64_t ts, struct bt_segment *seg)
{
    struct bt_entry e = {
        .labels = &h->in, .ts_ns = ts, .line = line, .line_len = strlen(line), .seg = seg};
    bt_pipeline_process(h->p, &e);
}

static void h_push(struct harness *h, const char *line)
{
    h_push_seg(h, line, 1000, NULL);
}

static const char *h_label(struct harness *h, size_t i, const char *name)
{
    cr_assert_lt(i, h->n);
    return bt_labels_get(&h->out[i].labels, name);
}

static double h_dropped(struct harness *h, const char *reason)
{
    char m[128];
    snprintf(m, sizeof(m), "reason=\"%s\"", reason);
    return bt_metrics_sum(h->m, "bpftail_dropped_entries_total", m);
}

static void h_reset_out(struct harness *h)
{
    for (size_t i = 0; i < h->n; i++) {
        bt_labels_free(&h->out[i].labels);
        bt_labels_free(&h->out[i].meta);
        free(h->out[i].line);
    }
    h->n = 0;
}

static void h_free(struct harness *h)
{
    h_reset_out(h);
    bt_pipeline_free(h->p);
    bt_node_free(h->root);
    bt_metrics_free(h->m);
    bt_labels_free(&h->in);
}

#endif
