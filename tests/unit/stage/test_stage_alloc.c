/* The common path of the stages allocates nothing per line once its buffers have grown: this
 * binary replaces malloc and friends with counting wrappers around glibc's own allocator and
 * counts, on the test's thread only, the allocations made while lines go through a pipeline. */
#include "test_stage_harness.h"

#include <stdio.h>

#include "util/buf.h"
#include "util/regex.h"

#if defined(__SANITIZE_ADDRESS__)
#define NO_COUNTING 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NO_COUNTING 1
#endif
#endif

static __thread int counting;
static __thread long allocs;

#ifndef NO_COUNTING
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

void *malloc(size_t n)
{
    allocs += counting;
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    allocs += counting;
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    allocs += counting;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}
#endif

static long seen;
static void count_sink(void *ctx, const struct bt_entry *e)
{
    seen++;
}

static const char *pipeline_yaml =
    "- regex: {expression: '^(?P<level>\\w+) (?P<payload>\\{.*\\}) (?P<rest>.*)$'}\n"
    "- labels: {level: ''}\n"
    "- json: {expressions: {user: user, code: 'req.code', first: 'tags[0]'}, source: payload}\n"
    "- logfmt: {mapping: {dur: duration}, source: rest}\n"
    "- static_labels: {env: prod}\n"
    "- labeldrop: [filename]\n"
    "- match:\n    selector: '{env=\"prod\"} |= \"duration\"'\n    stages:\n"
    "    - replace: {expression: 'user=(\\w+)', replace: '****'}\n"
    "- drop: {expression: 'never-there', source: rest}\n"
    "- metrics:\n"
    "    lines: {type: Counter, config: {match_all: true, action: inc}}\n"
    "    dur: {type: Histogram, source: dur, config: {buckets: [1, 10, 100]}}\n"
    "- structured_metadata: {user: ''}\n"
    "- tenant: {value: team}\n"
    "- output: {source: rest}\n";

static int syslog_lines; /* lines as the bench writes them instead of the default mix */

static long allocs_per_1000_lines(const char *yaml)
{
    char err[512];
    struct bt_node *root = yaml ? bt_yaml_parse(yaml, strlen(yaml), "p", err, sizeof(err)) : NULL;
    cr_assert(!yaml || root, "%s", err);
    struct bt_metrics *m = bt_metrics_new();
    struct bt_pipeline *p = bt_pipeline_new(root, "j", m, count_sink, NULL, err, sizeof(err));
    cr_assert_not_null(p, "%s", err);
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "varlogs");
    bt_labels_set(&l, "filename", "/var/log/app.log");
    char line[256];
    seen = 0;
    for (int i = 0; i < 1100; i++) {
        int n =
            syslog_lines
                ? snprintf(line, sizeof(line),
                           "2026-01-02T03:04:05.%06dZ host%d app%d[%d]: message seq=%d", i, i % 3,
                           i % 7, 100 + i, i)
                : snprintf(line, sizeof(line),
                           "info {\"user\":\"u%d\",\"req\":{\"code\":%d},\"tags\":[\"a\",\"b\"]} "
                           "duration=%d user=bob%d msg=\"x y\"",
                           i % 7, 200 + i % 3, i % 50, i % 5);
        struct bt_entry e = {.labels = &l, .ts_ns = i, .line = line, .line_len = (size_t)n};
        if (i == 100) /* warmed up: buffers and series exist */
            counting = 1, allocs = 0;
        bt_pipeline_process(p, &e);
    }
    counting = 0;
    cr_assert_eq(seen, 1100);
    bt_pipeline_free(p);
    bt_metrics_free(m);
    bt_node_free(root);
    bt_labels_free(&l);
    return allocs;
}

Test(stage_alloc, common_path_allocates_nothing_per_line)
{
#ifdef NO_COUNTING
    cr_skip_test("built with AddressSanitizer, which owns malloc: allocation counting is off");
#endif
    /* bpftail's own code allocates nothing per line. RE2 does, when a search must report
     * submatches (the regex stage, and replace): its BitState and NFA engines take their scratch
     * arrays from malloc on each search, small and served by glibc's thread cache. Three per
     * line here: the regex stage's search and the replace stage's; a pipeline with no submatch
     * search stays at zero (below). */
    long n = allocs_per_1000_lines(pipeline_yaml);
    cr_assert_leq(n, 3000, "%ld allocations for 1000 lines", n);
    static const char *no_submatch_yaml =
        "- logfmt: {mapping: {dur: duration, user: user}}\n"
        "- labels: {user: ''}\n"
        "- match:\n    selector: '{job=\"varlogs\"} |~ \"dur.tion=[0-9]+\"'\n    stages:\n"
        "    - static_labels: {env: prod}\n"
        "- drop: {expression: 'never-there'}\n";
    n = allocs_per_1000_lines(no_submatch_yaml);
    cr_assert_eq(n, 0, "%ld allocations for 1000 lines without submatch search", n);
}

Test(stage_alloc, bench_pipeline_allocates_nothing_per_line)
{
#ifdef NO_COUNTING
    cr_skip_test("built with AddressSanitizer, which owns malloc: allocation counting is off");
#endif
    /* bench/run.py's 4-stage pipeline. Its regex has five groups, two read by no stage: they are
     * compiled non-capturing, which leaves a pattern RE2 matches with its one-pass engine, which
     * allocates nothing (five groups would take BitState, one allocation per line). */
    static const char *yaml = "- regex:\n"
                              "    expression: '^(?P<time>\\S+) (?P<host>\\S+) (?P<app>[^\\[:]+)"
                              "(?:\\[(?P<pid>\\d+)\\])?: (?P<msg>.*)$'\n"
                              "- labels: {app: ''}\n"
                              "- timestamp: {source: time, format: RFC3339Nano}\n"
                              "- output: {source: msg}\n";
    syslog_lines = 1;
    long n = allocs_per_1000_lines(yaml);
    syslog_lines = 0;
    cr_assert_eq(n, 0, "%ld allocations for 1000 lines", n);
}

Test(stage_alloc, no_stages_allocates_nothing)
{
#ifdef NO_COUNTING
    cr_skip_test("built with AddressSanitizer, which owns malloc: allocation counting is off");
#endif
    cr_assert_eq(allocs_per_1000_lines(NULL), 0);
}

Test(stage_alloc, counting_wrappers_do_count)
{
#ifdef NO_COUNTING
    cr_skip_test("built with AddressSanitizer, which owns malloc: allocation counting is off");
#endif
    /* btcore's own allocations (linked into this binary) ... */
    struct bt_buf b;
    bt_buf_init(&b, 64);
    counting = 1, allocs = 0;
    bt_buf_add(&b, "x", 1);
    counting = 0;
    bt_buf_free(&b);
    cr_assert_eq(allocs, 1);
    /* ... and a shared library's (RE2 allocates its program with operator new, which calls malloc)
     */
    char err[128];
    counting = 1, allocs = 0;
    struct bt_regex *re = bt_regex_new("(a)", 0, err, sizeof(err));
    counting = 0;
    bt_regex_free(re);
    cr_assert_geq(allocs, 1);
}
