/*
 * Partial-line joining (stage/partial.c) as the docker and cri stages drive it: runs of chunks
 * (Docker json-file records whose log has no trailing \n, CRI "P" records) from two files and
 * both streams, interleaved, with small size and stream limits so splitting, truncation and
 * eviction of the oldest pending line are all reachable. Each input line is one record; its
 * first byte picks the file label the record arrives with.
 */
#include "fuzz_common.h"

static const char *const configs[] = {
    "- docker: {max_partial_line_size: 48, max_partial_lines: 2}\n",
    "- docker: {max_partial_line_size: 48, max_partial_line_size_truncate: true}\n",
    "- cri: {max_partial_line_size: 48, max_partial_lines: 2}\n",
    "- cri: {max_partial_line_size: 48, max_partial_line_size_truncate: true, max_partial_lines: "
    "1}",
};
#define N_CONFIGS (sizeof(configs) / sizeof(configs[0]))
static struct fz_pipe pipes[N_CONFIGS];
static struct bt_labels files[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    for (size_t i = 0; i < N_CONFIGS; i++)
        fz_pipe_new(&pipes[i], configs[i]);
    for (int i = 0; i < 2; i++) {
        bt_labels_init(&files[i]);
        bt_labels_set(&files[i], "job", "fuzz");
        bt_labels_set(&files[i], "filename", i ? "/var/log/b.log" : "/var/log/a.log");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct fz_pipe *f = &pipes[data[0] % N_CONFIGS];
    data++, size--;
    int64_t ts = 1700000000000000000LL;
    size_t off = 0;
    while (off < size) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t n = nl ? (size_t)(nl - (data + off)) : size - off;
        size_t pick = n ? data[off] & 1 : 0;
        const char *p = (const char *)data + off + (n ? 1 : 0);
        size_t pn = n ? n - 1 : 0;
        char *line = malloc(pn ? pn : 1);
        if (!line)
            abort();
        memcpy(line, p, pn);
        struct bt_entry e = {.labels = &files[pick], .ts_ns = ts, .line = line, .line_len = pn};
        bt_pipeline_process(f->p, &e);
        free(line);
        /* Now and then time passes: lines waiting longer than max_wait_time go out. */
        if (n && (data[off] & 0x80))
            bt_pipeline_tick(f->p, bt_pipeline_deadline(f->p));
        ts += 1000;
        off += n + 1;
    }
    bt_pipeline_flush(f->p);
    return 0;
}
