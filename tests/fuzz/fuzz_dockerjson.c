/*
 * The Docker json-file record decoder (util/dockerjson.c): the fast path and the jansson
 * fallback, with a small and a large output cap, and the docker stage over the same record.
 * Checks that a decoded record's fields hold together: the stream fits its array, the log
 * fits its cap.
 */
#include "fuzz_common.h"
#include "util/buf.h"
#include "util/dockerjson.h"

static struct fz_pipe pipe_;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    fz_pipe_new(&pipe_, "- docker: {}\n- labels: {stream: }\n");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *rec = malloc(size ? size : 1);
    if (!rec)
        abort();
    memcpy(rec, data, size);
    static const size_t caps[] = {16, 1 << 20};
    for (int i = 0; i < 2; i++) {
        struct bt_buf log;
        bt_buf_init(&log, caps[i]);
        struct bt_dockerjson d;
        memset(&d, 0, sizeof(d));
        int rc = bt_dockerjson_parse(rec, size, &log, &d);
        if (rc == 0 && (d.stream_len >= sizeof(d.stream) || log.len > caps[i]))
            abort();
        if (rc != 0 && rc != -EINVAL && rc != -E2BIG)
            abort();
        bt_buf_reset(&log);
        (void)bt_dockerjson_unescape(rec, size, &log);
        bt_buf_free(&log);
    }
    free(rec);
    fz_pipe_lines(&pipe_, data, size);
    return 0;
}
