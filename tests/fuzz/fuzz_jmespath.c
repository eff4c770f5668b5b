/*
 * The JMESPath subset and JSON scanner (util/jmespath.c). The input's first line is compiled as
 * an expression and the rest is the document: the path is evaluated alone and in the one-pass
 * object walk, which must agree with the validator; spans must lie inside the document, and
 * string values unescape and quote again without error.
 */
#include "fuzz_common.h"
#include "util/buf.h"
#include "util/jmespath.h"

static const char *const fixed[] = {"a", "a.b[0].c", "\"x-y\"[-1]", "[2]"};
#define N_FIXED (sizeof(fixed) / sizeof(fixed[0]))
static struct bt_jpath *fixed_p[N_FIXED];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    fz_quiet();
    for (size_t i = 0; i < N_FIXED; i++)
        if (!(fixed_p[i] = bt_jpath_new(fixed[i], err, sizeof(err))))
            abort();
    return 0;
}

static void check_span(const char *doc, size_t n, const char *v, size_t vn)
{
    if (v < doc || v + vn > doc + n)
        abort();
    struct bt_buf b;
    bt_buf_init(&b, 1 << 20);
    if (vn && v[0] == '"') {
        if (bt_json_unescape(v, vn, &b) == 0) {
            struct bt_buf q;
            bt_buf_init(&q, 1 << 22);
            if (bt_json_quote(&q, b.ptr ? b.ptr : "", b.len) != 0)
                abort();
            if (!bt_json_valid(q.ptr, q.len))
                abort();
            bt_buf_free(&q);
        }
    }
    bt_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *h, *r;
    size_t hn, rn;
    fz_split(data, size, &h, &hn, &r, &rn);
    char *expr = fz_strdup(h, hn);
    char *doc = malloc(rn ? rn : 1);
    if (!doc)
        abort();
    memcpy(doc, r, rn);
    char err[256];
    struct bt_jpath *p = bt_jpath_new(expr, err, sizeof(err));
    bool valid = bt_json_valid(doc, rn);
    struct bt_jpath *all[N_FIXED + 1];
    size_t np = 0;
    for (size_t i = 0; i < N_FIXED; i++)
        all[np++] = fixed_p[i];
    if (p)
        all[np++] = p;
    const char *v[N_FIXED + 1];
    size_t vn[N_FIXED + 1];
    int found[N_FIXED + 1];
    int orc = bt_jpath_eval_object(all, np, doc, rn, v, vn, found);
    const char *t = doc;
    size_t tn = rn;
    bt_json_trim(&t, &tn);
    if ((orc == 0) != (valid && tn && t[0] == '{'))
        abort();
    if (orc == 0)
        for (size_t i = 0; i < np; i++)
            if (found[i])
                check_span(doc, rn, v[i], vn[i]);
    if (valid) {
        for (size_t i = 0; i < np; i++) {
            const char *ev;
            size_t evn;
            int f = bt_jpath_eval(all[i], doc, rn, &ev, &evn);
            if (f == 1) {
                check_span(doc, rn, ev, evn);
                if (!bt_json_valid(ev, evn))
                    abort();
            }
            /* the one-pass walk finds what the single evaluation finds */
            if (orc == 0 && f != found[i])
                abort();
        }
    }
    bt_jpath_free(p);
    free(doc);
    free(expr);
    return 0;
}
