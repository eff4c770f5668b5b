/* Robustness: parsers of outside input (JSON scanner and JMESPath evaluation, logfmt
 * tokenizer, LogQL parser, and a whole pipeline) get many mutated and random inputs with a
 * fixed seed. Under the sanitizer build this doubles as a small fuzz run; everywhere it checks
 * invariants (spans inside their input, valid JSON in, valid JSON out). */
#include "test_stage_harness.h"

#include "stage/logql.h"
#include "util/buf.h"
#include "util/jmespath.h"
#include "util/logfmt.h"

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static const char *seeds[] = {
    "{\"a\":{\"b\":[1,2,{\"c\":\"d\\u00e9\\n\"}]},\"e\":true,\"f\":null,\"g\":-1.5e3}",
    "level=info msg=\"hello \\\"world\\\"\" dur=1.5s empty= flag k\xc3\xa9y=v",
    "{job=\"x\", app=~\"a|b\", env!=\"dev\"} |= \"err\" !~ `^x` |~ \"(?i)warn\"",
    "\x1b[31mred\x1b[0m \xc2\x9b"
    "1m \xff\xfe plain",
};

static size_t mutate(char *out, size_t cap, const char *seed)
{
    size_t n = strlen(seed);
    if (n > cap)
        n = cap;
    memcpy(out, seed, n);
    int edits = (int)(next() % 6);
    for (int i = 0; i < edits && n; i++) {
        size_t at = next() % n;
        switch (next() % 4) {
        case 0: /* flip a byte */ out[at] = (char)next(); break;
        case 1: /* truncate */ n = at; break;
        case 2: /* duplicate a chunk */
            if (n + 8 <= cap) {
                memmove(out + at + 8, out + at, n - at);
                n += 8;
            }
            break;
        default: /* a structural character */ out[at] = "{}[]\":,\\=`|~!"[next() % 14];
        }
    }
    return n;
}

Test(robust, json_scanner_and_paths_hold_their_invariants)
{
    static const char *paths[] = {"a", "a.b[2].c", "a.b[-1]", "\"a\".b[0]", "e", "g", "z.y"};
    struct bt_jpath *jp[7];
    char err[128], doc[512];
    for (int i = 0; i < 7; i++)
        cr_assert_not_null(jp[i] = bt_jpath_new(paths[i], err, sizeof(err)), "%s", err);
    struct bt_buf b;
    bt_buf_init(&b, 4096);
    int valid = 0;
    for (int it = 0; it < 20000; it++) {
        size_t n = mutate(doc, sizeof(doc), seeds[0]);
        const char *mv[7];
        size_t mvl[7];
        int mf[7];
        int orc = bt_jpath_eval_object(jp, 7, doc, n, mv, mvl, mf);
        const char *t = doc;
        size_t tn = n;
        bt_json_trim(&t, &tn);
        cr_assert_eq(orc == 0, bt_json_valid(doc, n) && tn && t[0] == '{',
                     "one-pass and two-pass validation disagree on %.*s", (int)n, doc);
        if (!bt_json_valid(doc, n))
            continue;
        valid++;
        for (int i = 0; i < 7; i++) {
            const char *v;
            size_t vn;
            int f = bt_jpath_eval(jp[i], doc, n, &v, &vn);
            if (orc == 0) {
                cr_assert_eq(f, mf[i], "%s on %.*s", paths[i], (int)n, doc);
                cr_assert(!f || (v == mv[i] && vn == mvl[i]));
            }
            if (!f)
                continue;
            cr_assert(v >= doc && v + vn <= doc + n);
            cr_assert(bt_json_valid(v, vn), "result of %s is not JSON", paths[i]);
            if (v[0] == '"') {
                bt_buf_reset(&b);
                cr_assert_eq(bt_json_unescape(v, vn, &b), 0);
            }
        }
    }
    cr_assert_gt(valid, 100, "mutations should leave some documents valid");
    for (int i = 0; i < 7; i++)
        bt_jpath_free(jp[i]);
    bt_buf_free(&b);
}

Test(robust, random_bytes_never_validate_as_broken_json)
{
    char doc[64];
    for (int it = 0; it < 20000; it++) {
        size_t n = next() % sizeof(doc);
        for (size_t i = 0; i < n; i++)
            doc[i] = "{}[]\":,0123456789.eE+-tfnrul \\ab"[next() % 33];
        if (bt_json_valid(doc, n)) {
            /* anything accepted must scan the same way twice and trim to itself */
            const char *d = doc;
            size_t dn = n;
            bt_json_trim(&d, &dn);
            cr_assert(bt_json_valid(d, dn));
        }
    }
}

Test(robust, logfmt_tokens_stay_inside_the_line)
{
    char line[256];
    struct bt_buf b;
    bt_buf_init(&b, 4096);
    for (int it = 0; it < 20000; it++) {
        size_t n = mutate(line, sizeof(line), seeds[1]);
        struct bt_logfmt d;
        struct bt_logfmt_kv kv;
        bt_logfmt_init(&d, line, n);
        int rc, guard = 0;
        while ((rc = bt_logfmt_next(&d, &kv)) == 1) {
            cr_assert(kv.key >= line && kv.key + kv.klen <= line + n);
            cr_assert(kv.val >= line && kv.val + kv.vlen <= line + n);
            cr_assert_gt(kv.klen, 0);
            bt_buf_reset(&b);
            bt_logfmt_value(&kv, &b);
            cr_assert_lt(++guard, 300, "tokenizer does not advance");
        }
    }
    bt_buf_free(&b);
}

Test(robust, logql_parser_rejects_or_accepts_without_harm)
{
    char sel[256], err[256];
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "x");
    for (int it = 0; it < 5000; it++) {
        size_t n = mutate(sel, sizeof(sel) - 1, seeds[2]);
        sel[n] = '\0';
        struct bt_logql *q = bt_logql_parse(sel, err, sizeof(err));
        if (q) {
            bt_logql_match_labels(q, &l);
            bt_logql_match_line(q, sel, n);
            bt_logql_free(q);
        } else {
            cr_assert(strstr(err, "offset ") == err, "%s", err);
        }
    }
    bt_labels_free(&l);
}

Test(robust, whole_pipeline_takes_any_line)
{
    struct harness h;
    h_new(&h, "- decolorize: {}\n"
              "- json: {expressions: {a: a, c: 'a.b[2].c', g: g}}\n"
              "- logfmt: {mapping: {msg: '', lvl: level}}\n"
              "- regex: {expression: '(?P<first>\\S+)'}\n"
              "- replace: {expression: '(\\d+)', replace: '<{{ .Value }}>'}\n"
              "- labels: {lvl: '', first: ''}\n"
              "- structured_metadata: {msg: ''}\n"
              "- pack: {labels: [first, a], ingest_timestamp: false}\n"
              "- multiline: {firstline: '^\\{', max_lines: 3}\n");
    char line[512];
    for (int it = 0; it < 5000; it++) {
        size_t n = mutate(line, sizeof(line) - 1, seeds[next() % 4]);
        line[n] = '\0';
        for (size_t i = 0; i < n; i++)
            if (!line[i])
                line[i] = ' ';
        h_push(&h, line);
        h_reset_out(&h);
    }
    bt_pipeline_flush(h.p);
    h_free(&h);
}
