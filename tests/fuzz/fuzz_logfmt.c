/*
 * logfmt (util/logfmt.c): the tokenizer and value unquoting over the whole input, checking that
 * every token lies inside the input, then the logfmt stage over each line.
 */
#include "fuzz_common.h"
#include "util/buf.h"
#include "util/logfmt.h"

static struct fz_pipe pipe_;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    fz_pipe_new(&pipe_, "- logfmt:\n    mapping: {level: , msg: , dur: duration, k: }\n"
                        "- labels: {level: }\n"
                        "- output: {source: msg}\n");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    struct bt_logfmt d;
    struct bt_logfmt_kv kv;
    struct bt_buf v;
    bt_buf_init(&v, 1 << 16);
    bt_logfmt_init(&d, s, size);
    int rc, pairs = 0;
    while ((rc = bt_logfmt_next(&d, &kv)) == 1) {
        if (kv.key < s || kv.key + kv.klen > s + size ||
            (kv.vlen && (kv.val < s || kv.val + kv.vlen > s + size)))
            abort();
        if (++pairs > (int)size + 1)
            abort(); /* no progress */
        bt_buf_reset(&v);
        (void)bt_logfmt_value(&kv, &v);
    }
    if (rc != 0 && rc != -EINVAL)
        abort();
    bt_buf_free(&v);
    free(s);
    fz_pipe_lines(&pipe_, data, size);
    return 0;
}
