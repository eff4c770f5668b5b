/*
 * The Go template engine (util/gotemplate*.c): the input's first line is compiled as a template
 * (parser, function table, regex literals) and run against keys whose values are the rest of
 * the input, with small output caps so the limit paths are reached too.
 */
#include "fuzz_common.h"
#include "util/buf.h"
#include "util/gotemplate.h"

struct vals {
    const char *rest;
    size_t rn;
};

static int lookup(void *ctx, const char *name, size_t nlen, const char **val, size_t *vlen)
{
    struct vals *v = ctx;
    static const char *const keys[] = {"Value", "Entry", "a", "b", "n"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strlen(keys[i]) == nlen && memcmp(keys[i], name, nlen) == 0) {
            if (i == 4) {
                *val = "42", *vlen = 2;
            } else if (i == 3) {
                *val = v->rest, *vlen = v->rn < 8 ? v->rn : 8;
            } else {
                *val = v->rest, *vlen = v->rn;
            }
            return 1;
        }
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *h, *r;
    size_t hn, rn;
    fz_split(data, size, &h, &hn, &r, &rn);
    char *text = fz_strdup(h, hn);
    char *rest = malloc(rn ? rn : 1);
    if (!rest)
        abort();
    memcpy(rest, r, rn);
    char err[256];
    struct bt_gotmpl *t = bt_gotmpl_new(text, err, sizeof(err));
    if (t) {
        struct vals v = {rest, rn};
        static const size_t caps[] = {64, 1 << 20};
        for (int i = 0; i < 2; i++) {
            struct bt_buf out;
            bt_buf_init(&out, caps[i]);
            int rc = bt_gotmpl_exec(t, lookup, &v, &out, err, sizeof(err));
            if (out.len > caps[i])
                abort();
            if (rc != 0 && rc != -EINVAL && rc != -E2BIG && rc != -ENOMEM)
                abort();
            bt_buf_free(&out);
        }
        bt_gotmpl_free(t);
    }
    free(rest);
    free(text);
    return 0;
}
