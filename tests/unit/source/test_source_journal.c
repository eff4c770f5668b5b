/* source_journal on real journal files written by systemd-journal-remote from export-format
 * text: labels, lines, timestamps, JSON lines, and the cursor that moves only on release. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/labels.h"
#include "core/loop.h"
#include "config/node.h"
#include "source/positions.h"
#include "source/relabel.h"
#include "source/source_journal.h"
#include "tmpdir.h"
#include "util/timeutil.h"

#define BOOT "0123456789abcdef0123456789abcdef"

struct got {
    char labels[512];
    char line[512];
    int64_t ts;
    struct bt_segment *seg; /* held until the test releases it */
};

static struct got got[64];
static size_t n_got;
static char root[256], jdir[320];
static struct bt_node *cfgdoc, *reldoc;
static struct bt_loop *loop;
static struct bt_positions *pos;
static bool hold;
static struct bt_relabel *rel;

static void sink(void *ctx, const struct bt_entry *e)
{
    cr_assert_lt(n_got, 64);
    struct got *g = &got[n_got++];
    size_t n;
    const char *c = bt_labels_canon(e->labels, &n);
    snprintf(g->labels, sizeof(g->labels), "%.*s", (int)n, c);
    snprintf(g->line, sizeof(g->line), "%.*s", (int)e->line_len, e->line);
    g->ts = e->ts_ns;
    g->seg = NULL;
    if (hold) {
        bt_segment_ref(e->seg, 1);
        g->seg = e->seg;
    }
}

static const char *journal_remote(void)
{
    static const char *const c[] = {"/lib/systemd/systemd-journal-remote",
                                    "/usr/lib/systemd/systemd-journal-remote"};
    for (size_t i = 0; i < 2; i++)
        if (access(c[i], X_OK) == 0)
            return c[i];
    cr_assert_fail("systemd-journal-remote is not installed (scripts/deps.sh test)");
    return NULL;
}

/* Writes jdir/name from export text. */
static void write_journal(const char *name, const char *export_text)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s -o %s/%s - 2>/dev/null", journal_remote(), jdir, name);
    FILE *p = popen(cmd, "w");
    cr_assert_not_null(p);
    fputs(export_text, p);
    cr_assert_eq(pclose(p), 0, "systemd-journal-remote failed");
}

/* One export-format entry at realtime usec (monotonic follows it, one boot). */
static void entry(char *out, size_t outlen, int64_t usec, const char *fields)
{
    size_t n = strlen(out);
    snprintf(out + n, outlen - n,
             "__REALTIME_TIMESTAMP=%lld\n__MONOTONIC_TIMESTAMP=%lld\n_BOOT_ID=" BOOT "\n%s\n",
             (long long)usec, (long long)(usec - 1000000000000LL), fields);
}

static struct bt_journal *open_j(const char *cfg_yaml, const char *relabel_yaml)
{
    char err[512] = "", text[1024];
    for (size_t i = 0; i < n_got; i++)
        got[i].seg = NULL;
    snprintf(text, sizeof(text), "path: %s\n%s", jdir, cfg_yaml);
    bt_node_free(cfgdoc);
    cfgdoc = bt_yaml_parse(text, strlen(text), "j.yaml", err, sizeof(err));
    cr_assert_not_null(cfgdoc, "%s", err);
    bt_node_free(reldoc);
    reldoc = relabel_yaml
                 ? bt_yaml_parse(relabel_yaml, strlen(relabel_yaml), "r.yaml", err, sizeof(err))
                 : NULL;
    bt_relabel_free(rel);
    rel = bt_relabel_new(reldoc, err, sizeof(err));
    cr_assert_not_null(rel, "%s", err);
    struct bt_journal_env env = {
        .loop = loop, .relabel = rel, .job = "sys", .sink = sink, .positions = pos};
    struct bt_journal *j = bt_journal_new(cfgdoc, &env, err, sizeof(err));
    cr_assert_not_null(j, "%s", err);
    return j;
}

static void setup(void)
{
    cr_assert_eq(bt_tmpdir_make(root, sizeof(root)), 0);
    snprintf(jdir, sizeof(jdir), "%s/journal", root);
    cr_assert_eq(mkdir(jdir, 0755), 0);
    loop = bt_loop_new();
    char p[400];
    snprintf(p, sizeof(p), "%s/positions.yaml", root);
    pos = bt_positions_new(p, false);
    n_got = 0;
    hold = false;
}

static void teardown(void)
{
    bt_node_free(cfgdoc);
    bt_node_free(reldoc);
    cfgdoc = reldoc = NULL;
    bt_positions_free(pos);
    bt_relabel_free(rel);
    rel = NULL;
    bt_loop_free(loop);
    bt_tmpdir_remove(root);
}

TestSuite(source_journal, .init = setup, .fini = teardown);

Test(source_journal, priority_keywords_as_promtail)
{
    cr_expect_str_eq(bt_journal_priority_keyword("0"), "emerg");
    cr_expect_str_eq(bt_journal_priority_keyword("3"), "error");
    cr_expect_str_eq(bt_journal_priority_keyword("4"), "warning");
    cr_expect_str_eq(bt_journal_priority_keyword("7"), "debug");
    cr_expect_str_eq(bt_journal_priority_keyword("9"), "9");
    char k[64];
    cr_expect_str_eq(bt_journal_position_key(k, sizeof(k), "system"), "journal-system");
}

Test(source_journal, labels_lines_timestamps_and_skips)
{
    int64_t t0 = bt_now_ns() / 1000 - 10000000;
    char ex[4096] = "";
    entry(ex, sizeof(ex), t0 - 8 * 3600 * 1000000LL, "MESSAGE=too old\n");
    entry(ex, sizeof(ex), t0,
          "MESSAGE=hello\nPRIORITY=4\n_SYSTEMD_UNIT=a.service\nSYSLOG_IDENTIFIER=a\n");
    entry(ex, sizeof(ex), t0 + 1, "CODE_LINE=1\n"); /* no MESSAGE: skipped */
    entry(ex, sizeof(ex), t0 + 2, "MESSAGE=dropped\n_SYSTEMD_UNIT=drop.service\n");
    entry(ex, sizeof(ex), t0 + 3, "MESSAGE=no labels left\n");
    write_journal("a.journal", ex);
    struct bt_journal *j = open_j("labels: {}\n", "- source_labels: [__journal__systemd_unit]\n"
                                                  "  target_label: unit\n"
                                                  "- source_labels: [__journal_priority_keyword]\n"
                                                  "  target_label: level\n"
                                                  "- source_labels: [__journal_syslog_identifier]\n"
                                                  "  target_label: ident\n"
                                                  "- source_labels: [unit]\n"
                                                  "  regex: drop.service\n"
                                                  "  action: drop\n");
    cr_assert_eq(bt_journal_read(j, 100), 4); /* the too old one is before the start */
    cr_assert_eq(n_got, 1);
    cr_expect_str_eq(got[0].labels, "{ident=\"a\", level=\"warning\", unit=\"a.service\"}");
    cr_expect_str_eq(got[0].line, "hello");
    cr_expect_eq(got[0].ts, t0 * 1000);
    /* Every entry released at once: the cursor is the last one read. */
    cr_expect_eq(bt_journal_committed(j), 4);
    char k[64];
    const char *cur = bt_positions_get_string(pos, bt_journal_position_key(k, sizeof(k), "sys"));
    cr_assert_not_null(cur);
    cr_expect(strstr(cur, "s=") == cur, "%s", cur);
    bt_journal_free(j);
}

Test(source_journal, json_line_has_every_field_sorted)
{
    int64_t t0 = bt_now_ns() / 1000;
    char ex[1024] = "";
    entry(ex, sizeof(ex), t0,
          "MESSAGE=a \"q\" <b>\nPRIORITY=6\nX_BYTES=\xff\xe2\x80\xa8"
          "\xc3\xa9\n");
    write_journal("a.journal", ex);
    struct bt_journal *j = open_j("json: true\nlabels: {job: j}\n", NULL);
    cr_assert_eq(bt_journal_read(j, 10), 1);
    cr_assert_eq(n_got, 1);
    /* As Go's encoding/json: sorted keys, <>& escaped, bad UTF-8 as U+FFFD, U+2028 escaped. */
    cr_expect_str_eq(got[0].line, "{\"MESSAGE\":\"a \\\"q\\\" \\u003cb\\u003e\",\"PRIORITY\":\"6\","
                                  "\"X_BYTES\":\"\\ufffd\\u2028\xc3\xa9\","
                                  "\"_BOOT_ID\":\"" BOOT "\"}");
    cr_expect_str_eq(got[0].labels, "{job=\"j\"}");
    bt_journal_free(j);
}

Test(source_journal, cursor_moves_only_past_released_entries_and_resumes_after_it)
{
    int64_t t0 = bt_now_ns() / 1000 - 1000000;
    char ex[4096] = "", msg[64];
    for (int i = 0; i < 5; i++) {
        snprintf(msg, sizeof(msg), "MESSAGE=m%d\n", i);
        entry(ex, sizeof(ex), t0 + i, msg);
    }
    write_journal("a.journal", ex);
    hold = true;
    struct bt_journal *j = open_j("labels: {job: j}\n", NULL);
    cr_assert_eq(bt_journal_read(j, 10), 5);
    char k[64];
    bt_journal_position_key(k, sizeof(k), "sys");
    cr_expect_null(bt_positions_get_string(pos, k), "nothing accepted yet");
    /* Released out of order: 0, 1 and 3; the cursor stops at 1 (2 still held). */
    bt_segment_unref(got[0].seg, 1);
    bt_segment_unref(got[3].seg, 1);
    bt_segment_unref(got[1].seg, 1);
    cr_expect_eq(bt_journal_committed(j), 2);
    char saved[256];
    snprintf(saved, sizeof(saved), "%s", bt_positions_get_string(pos, k));
    bt_journal_free(j); /* 2 and 4 never accepted: an agent crash */
    bt_segment_unref(got[2].seg, 1);
    bt_segment_unref(got[4].seg, 1);
    cr_expect_str_eq(bt_positions_get_string(pos, k), saved, "a closed journal saves nothing");

    n_got = 0;
    hold = false;
    j = open_j("labels: {job: j}\n", NULL);
    cr_assert_eq(bt_journal_read(j, 10), 3);
    cr_expect_str_eq(got[0].line, "m2");
    cr_expect_str_eq(got[2].line, "m4");
    bt_journal_free(j);
}

Test(source_journal, resumes_when_the_saved_entry_no_longer_matches)
{
    int64_t t0 = bt_now_ns() / 1000 - 1000000;
    char ex[2048] = "";
    entry(ex, sizeof(ex), t0, "MESSAGE=b0\n_SYSTEMD_UNIT=b.service\n");
    entry(ex, sizeof(ex), t0 + 1, "MESSAGE=a1\n_SYSTEMD_UNIT=a.service\n");
    entry(ex, sizeof(ex), t0 + 2, "MESSAGE=a2\n_SYSTEMD_UNIT=a.service\n");
    write_journal("a.journal", ex);
    struct bt_journal *j = open_j("labels: {job: j}\n", NULL);
    cr_assert_eq(bt_journal_read(j, 1), 1); /* the cursor names b0 */
    bt_journal_free(j);
    n_got = 0;
    /* matches changed: the saved entry is filtered out, and no earlier entry matches. */
    j = open_j("labels: {job: j}\nmatches: _SYSTEMD_UNIT=a.service\n", NULL);
    cr_assert_eq(bt_journal_read(j, 10), 2);
    cr_expect_str_eq(got[0].line, "a1");
    cr_expect_str_eq(got[1].line, "a2");
    bt_journal_free(j);
}
