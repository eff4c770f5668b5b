/*
 * Decompression with a cap (util/inflate.c), as the push receiver and the GELF receiver use it
 * on bodies from outside: the first byte picks the format and one of three caps; the output
 * must never pass the cap, and an error must leave what was in the buffer before the call.
 */
#include "fuzz_common.h"
#include "util/buf.h"
#include "util/inflate.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t caps[] = {0, 100, 1 << 20};
    enum bt_inflate_format fmt = (enum bt_inflate_format)(data[0] % 3);
    size_t max = caps[(data[0] >> 2) % 3];
    data++, size--;
    char *in = malloc(size ? size : 1);
    if (!in)
        abort();
    memcpy(in, data, size);
    struct bt_buf out;
    bt_buf_init(&out, (1 << 20) + 16);
    bt_buf_add(&out, "prefix", 6);
    int rc = bt_inflate(in, size, fmt, max, &out);
    if (out.len > 6 + max)
        abort();
    if (rc != 0 && out.len != 6)
        abort();
    if (rc != 0 && rc != -E2BIG && rc != -EINVAL && rc != -ENOMEM)
        abort();
    if (memcmp(out.ptr, "prefix", 6) != 0)
        abort();
    bt_buf_free(&out);
    free(in);
    return 0;
}
