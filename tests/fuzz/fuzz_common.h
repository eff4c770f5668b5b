/*
 * Shared by the libFuzzer targets of tests/fuzz: quiet logging, a pipeline harness that runs
 * fuzzed lines through pipeline_stages built from fixed YAML, and a cheap invariant check on
 * what reaches the sink. Header-only (static functions), one copy per target binary.
 *
 * Every target keeps what it allocates per input inside the input's call, so libFuzzer's leak
 * check (-detect_leaks=1) sees a leak in the product as a leak, not as a cache of the target.
 */
#ifndef BT_FUZZ_COMMON_H
#define BT_FUZZ_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/node.h"
#include "core/entry.h"
#include "core/labels.h"
#include "core/metrics.h"
#include "stage/pipeline.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The product's warnings on bad input would flood the fuzzer's output. */
static inline void fz_quiet(void)
{
    bt_log_set_level(BT_LOG_ERROR);
}

/* A NUL-terminated copy of the input (parsers that take C strings). */
static inline char *fz_strdup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits the input at the first '\n' (or at a NUL) into a head, often a pattern or layout, and
 * the rest. */
static inline void fz_split(const uint8_t *data, size_t size, const uint8_t **head, size_t *hn,
                            const uint8_t **rest, size_t *rn)
{
    const uint8_t *nl = memchr(data, '\n', size);
    *head = data;
    *hn = nl ? (size_t)(nl - data) : size;
    *rest = nl ? nl + 1 : data + size;
    *rn = nl ? size - *hn - 1 : 0;
}

struct fz_pipe {
    struct bt_node *root;
    struct bt_metrics *m;
    struct bt_pipeline *p;
    struct bt_labels in;
    uint64_t out;
};

static void fz_sink(void *ctx, const struct bt_entry *e)
{
    struct fz_pipe *f = ctx;
    /* Touch every byte the entry points at so ASan checks the spans are live memory. */
    volatile unsigned char x = 0;
    for (size_t i = 0; i < e->line_len; i++)
        x ^= (unsigned char)e->line[i];
    for (size_t i = 0; i < e->n_meta; i++) {
        for (size_t k = 0; k < e->meta[i].name_len; k++)
            x ^= (unsigned char)e->meta[i].name[k];
        for (size_t k = 0; k < e->meta[i].value_len; k++)
            x ^= (unsigned char)e->meta[i].value[k];
    }
    if (e->labels) {
        size_t n;
        const char *c = bt_labels_canon(e->labels, &n);
        for (size_t i = 0; c && i < n; i++)
            x ^= (unsigned char)c[i];
    }
    (void)x;
    f->out++;
}

/* Builds the pipeline of yaml (a pipeline_stages list); aborts if it does not build, since the
 * configs are fixed by the target. */
static inline void fz_pipe_new(struct fz_pipe *f, const char *yaml)
{
    char err[512];
    memset(f, 0, sizeof(*f));
    bt_labels_init(&f->in);
    bt_labels_set(&f->in, "job", "fuzz");
    bt_labels_set(&f->in, "filename", "/var/log/fuzz.log");
    f->m = bt_metrics_new();
    f->root = bt_yaml_parse(yaml, strlen(yaml), "fuzz.yaml", err, sizeof(err));
    if (!f->root || !f->m)
        abort();
    f->p = bt_pipeline_new(f->root, "fuzz", f->m, fz_sink, f, err, sizeof(err));
    if (!f->p) {
        fprintf(stderr, "fuzz pipeline does not build: %s\n", err);
        abort();
    }
}

static inline void fz_pipe_line(struct fz_pipe *f, const char *line, size_t n, int64_t ts)
{
    struct bt_entry e = {.labels = &f->in, .ts_ns = ts, .line = line, .line_len = n};
    bt_pipeline_process(f->p, &e);
}

/* Every '\n'-separated line of the input through the pipeline, then a tick and a flush so held
 * lines (multiline, partial joins) come out too. */
static inline void fz_pipe_lines(struct fz_pipe *f, const uint8_t *data, size_t size)
{
    int64_t ts = 1700000000000000000LL;
    size_t off = 0;
    while (off < size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t n = nl ? (size_t)(nl - (data + off)) : size - off;
        /* A copy of exactly the line, so reading past it is an ASan error. */
        char *line = malloc(n ? n : 1);
        if (!line)
            abort();
        memcpy(line, data + off, n);
        fz_pipe_line(f, line, n, ts);
        free(line);
        ts += 1000;
        off += n + 1;
    }
    bt_pipeline_tick(f->p, INT64_MAX / 2);
    bt_pipeline_flush(f->p);
}

static inline void fz_pipe_free(struct fz_pipe *f)
{
    bt_pipeline_free(f->p);
    bt_node_free(f->root);
    bt_metrics_free(f->m);
    bt_labels_free(&f->in);
}

#endif
