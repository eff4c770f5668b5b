#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ack.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "source/positions.h"
#include "source/source_file.h"
#include "tmpdir.h"
#include "util/buf.h"
#include "util/timeutil.h"

#define MAXL 20000

struct sink {
    char *lines[MAXL];
    char *files[MAXL];
    char *apps[MAXL]; /* the "app" label, "" without */
    size_t n;
    bool hold;
    struct bt_segment *held[MAXL];
    size_t nheld;
};

static void collect(void *ctx, const struct bt_entry *e)
{
    struct sink *s = ctx;
    cr_assert_lt(s->n, MAXL);
    cr_assert_null(bt_labels_get(e->labels, "__path__"));
    cr_assert_str_eq(bt_labels_get(e->labels, "job"), "varlogs");
    s->lines[s->n] = strndup(e->line, e->line_len);
    s->files[s->n] = strdup(bt_labels_get(e->labels, "filename"));
    const char *app = bt_labels_get(e->labels, "app");
    s->apps[s->n] = strdup(app ? app : "");
    s->n++;
    if (s->hold) {
        bt_segment_ref(e->seg, 1);
        s->held[s->nheld++] = e->seg;
    }
}

static void sink_clear(struct sink *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->lines[i]);
        free(s->files[i]);
        free(s->apps[i]);
    }
    s->n = 0;
}

static char dir[256], posfile[512];
static struct bt_loop *loop;
static struct bt_metrics *metrics;
static struct bt_agent_config agent;
static struct bt_limits_config limits;
static struct bt_positions_config poscfg;
static struct bt_files_config fcfg;
static struct sink sink;

static void setup(void)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    snprintf(posfile, sizeof(posfile), "%s/positions.yaml", dir);
    char logs[512];
    snprintf(logs, sizeof(logs), "%s/logs", dir);
    mkdir(logs, 0755);
    loop = bt_loop_new();
    metrics = bt_metrics_new();
    agent = (struct bt_agent_config){.line_flush_timeout_ns = 150 * BT_NS_PER_MS,
                                     .rotate_grace_ns = 100 * BT_NS_PER_MS,
                                     .read_buffer = 65536,
                                     .fingerprint_check = true};
    limits = (struct bt_limits_config){0};
    poscfg =
        (struct bt_positions_config){.filename = posfile, .sync_period_ns = 10 * BT_NS_PER_SEC};
    fcfg = (struct bt_files_config){.loop = loop,
                                    .metrics = metrics,
                                    .agent = &agent,
                                    .limits = &limits,
                                    .positions = &poscfg,
                                    .sync_period_ns = 10 * BT_NS_PER_SEC,
                                    .watcher = "inotify"};
    memset(&sink, 0, sizeof(sink));
}

static void teardown(void)
{
    sink_clear(&sink);
    bt_metrics_free(metrics);
    bt_loop_free(loop);
    bt_tmpdir_remove(dir);
}

TestSuite(files, .init = setup, .fini = teardown, .timeout = 30);

static struct bt_files *start(const char *glob_rel, const char *exclude_rel, enum bt_start_at at,
                              int64_t ignore_older)
{
    char err[256], glob[512], excl[512];
    struct bt_files *f = bt_files_new(&fcfg, err, sizeof(err));
    cr_assert_not_null(f, "%s", err);
    struct bt_labels l;
    bt_labels_init(&l);
    snprintf(glob, sizeof(glob), "%s/%s", dir, glob_rel);
    bt_labels_set(&l, "__path__", glob);
    if (exclude_rel) {
        snprintf(excl, sizeof(excl), "%s/%s", dir, exclude_rel);
        bt_labels_set(&l, "__path_exclude__", excl);
    }
    bt_labels_set(&l, "job", "varlogs");
    cr_assert_eq(bt_files_add_target(f, "varlogs", &l, at, ignore_older, collect, &sink), 0);
    bt_labels_free(&l);
    return f;
}

static void pump(int ms)
{
    int64_t end = bt_mono_ns() + (int64_t)ms * BT_NS_PER_MS;
    while (bt_mono_ns() < end)
        bt_loop_run_once(loop, 5 * BT_NS_PER_MS);
}

/* Runs the loop until n lines arrived or max_ms passed. */
static void pump_for(size_t n, int max_ms)
{
    int64_t end = bt_mono_ns() + (int64_t)max_ms * BT_NS_PER_MS;
    while (sink.n < n && bt_mono_ns() < end)
        bt_loop_run_once(loop, 5 * BT_NS_PER_MS);
}

static int count_fds(void);

static void put(const char *name, const char *text)
{
    cr_assert_eq(bt_tmpdir_append(dir, name, text, strlen(text)), 0);
}

static void put_seq(const char *name, int from, int to)
{
    char b[64];
    for (int i = from; i < to; i++) {
        snprintf(b, sizeof(b), "line-%05d\n", i);
        put(name, b);
    }
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* The sink got exactly line-from .. line-(to-1), in order. */
static void expect_seq(int from, int to)
{
    cr_assert_eq(sink.n, (size_t)(to - from), "got %zu lines, want %d", sink.n, to - from);
    for (int i = from; i < to; i++) {
        char want[64];
        snprintf(want, sizeof(want), "line-%05d", i);
        cr_assert_str_eq(sink.lines[i - from], want);
    }
}

static uint64_t saved_offset(const char *name)
{
    char p[512];
    path_of(p, sizeof(p), name);
    struct bt_positions *pos = bt_positions_new(posfile, true);
    bt_positions_load(pos, NULL);
    const struct bt_position *r = bt_positions_get(pos, p);
    uint64_t off = r ? r->offset : UINT64_MAX;
    bt_positions_free(pos);
    return off;
}

Test(files, reads_existing_files_then_new_lines_from_events)
{
    put("logs/a.log", "a1\na2\n");
    put("logs/b.txt", "not matched\n");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    cr_assert_str_eq(bt_files_watcher(f), "inotify");
    cr_assert_eq(sink.n, 2);
    cr_assert_eq(bt_files_active(f), 1);
    char p[512];
    path_of(p, sizeof(p), "logs/a.log");
    cr_assert_str_eq(sink.files[0], p);
    put("logs/a.log", "a3\n");
    pump_for(3, 2000);
    cr_assert_eq(sink.n, 3);
    cr_assert_str_eq(sink.lines[2], "a3");
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_files_active_total", ""), 1);
    bt_files_free(f);
}

Test(files, new_file_in_watched_dir_is_read_from_start_unless_excluded)
{
    struct bt_files *f = start("logs/*.log", "logs/skip*.log", BT_START_END, 0);
    put("logs/new.log", "n1\nn2\n");
    put("logs/skip-me.log", "s1\n");
    pump_for(2, 2000);
    pump(50);
    cr_assert_eq(sink.n, 2);
    cr_assert_str_eq(sink.lines[0], "n1");
    cr_assert_eq(bt_files_active(f), 1);
    bt_files_free(f);
}

Test(files, files_in_new_subdirectories_are_found_for_double_star)
{
    struct bt_files *f = start("logs/**/*.log", NULL, BT_START_BEGINNING, 0);
    char d[512];
    path_of(d, sizeof(d), "logs/app");
    mkdir(d, 0755);
    pump(50);
    path_of(d, sizeof(d), "logs/app/deep");
    mkdir(d, 0755);
    pump(50);
    put("logs/app/deep/x.log", "deep\n");
    pump_for(1, 2000);
    cr_assert_eq(sink.n, 1);
    cr_assert_str_eq(sink.lines[0], "deep");
    bt_files_free(f);
}

Test(files, rename_create_rotation_while_writing_loses_and_duplicates_nothing)
{
    put_seq("logs/app.log", 0, 100);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    char p[512], q[512];
    path_of(p, sizeof(p), "logs/app.log");
    path_of(q, sizeof(q), "logs/app.log.1");
    /* The writer keeps its descriptor across the rename, as syslog daemons do until HUP. */
    int fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    for (int i = 100; i < 150; i++)
        dprintf(fd, "line-%05d\n", i);
    pump(20);
    cr_assert_eq(rename(p, q), 0);
    for (int i = 150; i < 200; i++)
        dprintf(fd, "line-%05d\n", i); /* into the renamed file */
    close(fd);
    pump(20);
    put_seq("logs/app.log", 200, 300); /* the new file */
    pump_for(300, 3000);
    expect_seq(0, 300);
    pump(300); /* grace passes: the old file is released */
    cr_assert_eq(bt_files_active(f), 1);
    bt_files_free(f);
}

Test(files, rotated_name_that_also_matches_is_not_read_twice)
{
    put_seq("logs/app.log", 0, 50);
    struct bt_files *f = start("logs/app.log*", NULL, BT_START_BEGINNING, 0);
    char p[512], q[512];
    path_of(p, sizeof(p), "logs/app.log");
    path_of(q, sizeof(q), "logs/app.log.1");
    pump_for(50, 2000);
    cr_assert_eq(rename(p, q), 0);
    put_seq("logs/app.log.1", 50, 60);
    pump(30);
    put_seq("logs/app.log", 60, 80);
    pump_for(80, 3000);
    pump(300);
    expect_seq(0, 80);
    cr_assert_eq(bt_files_active(f), 2);
    bt_files_free(f);
    /* Both names keep their own record, each with its own committed offset. */
    cr_assert_eq(saved_offset("logs/app.log.1"), 60 * 11);
    cr_assert_eq(saved_offset("logs/app.log"), 20 * 11);
}

Test(files, copytruncate_restarts_at_zero_without_duplicates)
{
    put_seq("logs/app.log", 0, 40);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    char p[512];
    path_of(p, sizeof(p), "logs/app.log");
    pump_for(40, 2000);
    cr_assert_eq(truncate(p, 0), 0);
    put_seq("logs/app.log", 40, 100); /* more than before: size alone would miss it */
    pump_for(100, 3000);
    pump(50);
    expect_seq(0, 100);
    bt_files_free(f);
    cr_assert_eq(saved_offset("logs/app.log"), 60 * 11);
}

/* Copies name to copy (bytes as they are now), like logrotate's copytruncate does. */
static void copy_file(const char *name, const char *copy)
{
    char a[512], b[512], buf[4096];
    path_of(a, sizeof(a), name);
    path_of(b, sizeof(b), copy);
    FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
    cr_assert(in && out);
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        cr_assert_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

Test(files, copytruncate_recovers_unread_bytes_from_the_copy)
{
    put_seq("logs/app.log", 0, 40);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    char p[512];
    path_of(p, sizeof(p), "logs/app.log");
    pump_for(40, 2000);
    expect_seq(0, 40);
    bt_files_pause(f); /* bpftail falls behind: 40..59 are written but not read */
    put_seq("logs/app.log", 40, 60);
    put("logs/other.log.1", "line-00000\n"); /* same head, too short: not the copy */
    copy_file("logs/app.log", "logs/app.log.1");
    cr_assert_eq(truncate(p, 0), 0);
    put_seq("logs/app.log", 60, 100);
    bt_files_resume(f);
    pump_for(100, 3000);
    pump(50);
    expect_seq(0, 100);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_lost_bytes_total", ""), 0);
    bt_files_free(f);
    /* The recovered bytes belonged to the old content: the new file's position is its own. */
    cr_assert_eq(saved_offset("logs/app.log"), 40 * 11);
}

/* Every line tag-<file>-<k> for k < per arrived exactly once. */
static void expect_each_once(int files, int per)
{
    cr_assert_eq(sink.n, (size_t)(files * per), "got %zu lines", sink.n);
    for (int i = 0; i < files; i++)
        for (int k = 0; k < per; k++) {
            char want[64];
            snprintf(want, sizeof(want), "tag-%02d-%d", i, k);
            int seen = 0;
            for (size_t j = 0; j < sink.n; j++)
                seen += strcmp(sink.lines[j], want) == 0;
            cr_assert_eq(seen, 1, "%s seen %d times", want, seen);
        }
}

static void put_tagged(int files, int k)
{
    for (int i = 0; i < files; i++) {
        char name[64], text[64];
        snprintf(name, sizeof(name), "logs/f%02d.log", i);
        snprintf(text, sizeof(text), "tag-%02d-%d\n", i, k);
        put(name, text);
    }
}

Test(files, open_file_budget_parks_acknowledged_files_and_reopens_them_on_change)
{
    agent.max_open_files = 3;
    put_tagged(10, 0);
    int fds = count_fds();
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump_for(10, 3000);
    cr_assert_leq(bt_files_active(f), 3);
    cr_assert_leq(count_fds() - fds, 3 + 2, "watcher fds plus at most the budget");
    put_tagged(10, 1);
    pump_for(20, 3000);
    pump(50);
    cr_assert_leq(bt_files_active(f), 3);
    expect_each_once(10, 2);
    bt_files_free(f);
}

Test(files, default_budget_comes_from_the_soft_descriptor_limit)
{
    /* Criterion runs each test in its own process: the lower limit stays in this one. */
    put_tagged(40, 0);
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = (rlim_t)(count_fds() - 3) + 64 + 20; /* in use, the reserve, ~20 files */
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump_for(40, 3000);
    cr_assert_leq(bt_files_active(f), 20);
    cr_assert_geq(bt_files_active(f), 10);
    put_tagged(40, 1);
    pump_for(80, 3000);
    pump(50);
    expect_each_once(40, 2);
    bt_files_free(f);
}

Test(files, files_behind_are_never_parked_and_opening_waits_for_acks)
{
    agent.max_open_files = 3;
    sink.hold = true;
    put_tagged(6, 0);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump(300);
    cr_assert_eq(sink.n, 3, "only the budget's worth opened while nothing is acknowledged");
    cr_assert_eq(bt_files_active(f), 3);
    sink.hold = false;
    for (size_t i = 0; i < sink.nheld; i++)
        bt_segment_unref(sink.held[i], 1);
    sink.nheld = 0;
    pump_for(6, 3000);
    pump(50);
    expect_each_once(6, 1);
    cr_assert_leq(bt_files_active(f), 3);
    bt_files_free(f);
}

static int add_target(struct bt_files *f, const char *glob_rel)
{
    char glob[512];
    struct bt_labels l;
    bt_labels_init(&l);
    snprintf(glob, sizeof(glob), "%s/%s", dir, glob_rel);
    bt_labels_set(&l, "__path__", glob);
    bt_labels_set(&l, "job", "varlogs");
    int rc = bt_files_add_target(f, "varlogs", &l, BT_START_BEGINNING, 0, collect, &sink);
    bt_labels_free(&l);
    return rc;
}

Test(files, reload_keeps_the_same_target_with_its_partial_line_and_drops_removed_ones)
{
    put_seq("logs/a.log", 0, 3);
    put("logs/a.log", "line-0"); /* partial: completed after the reload */
    put("logs/b.txt", "other-1\n");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    cr_assert_eq(add_target(f, "logs/*.txt"), 0);
    pump_for(4, 2000);
    cr_assert_eq(bt_files_active(f), 2);
    bt_files_pause(f);
    bt_files_mark_targets(f);
    cr_assert_eq(add_target(f, "logs/*.log"), 0); /* kept */
    bt_files_drop_stale_targets(f);               /* *.txt removed */
    bt_files_resume(f);
    cr_assert_eq(bt_files_active(f), 1);
    put("logs/a.log", "0003\n");
    put_seq("logs/a.log", 4, 6);
    put("logs/b.txt", "other-2\n");
    pump_for(7, 2000);
    pump(100);
    cr_assert_eq(sink.n, 7, "got %zu lines", sink.n);
    int k = 0, other = 0; /* line-0..5 in order (one of them completed across the reload) */
    for (size_t j = 0; j < sink.n; j++) {
        if (!strcmp(sink.lines[j], "other-1")) {
            other++;
            continue;
        }
        char want[64];
        snprintf(want, sizeof(want), "line-%05d", k++);
        cr_assert_str_eq(sink.lines[j], want);
    }
    cr_assert_eq(other, 1, "the removed target's file is not read after the reload");
    bt_files_free(f);
}

Test(files, truncate_to_zero_then_small_writes_are_read)
{
    put_seq("logs/app.log", 0, 10);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    char p[512];
    path_of(p, sizeof(p), "logs/app.log");
    cr_assert_eq(truncate(p, 0), 0);
    pump(50);
    put_seq("logs/app.log", 10, 12);
    pump_for(12, 2000);
    expect_seq(0, 12);
    bt_files_free(f);
}

Test(files, deleted_file_is_read_to_eof_then_closed_and_forgotten)
{
    put_seq("logs/app.log", 0, 10);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    char p[512];
    path_of(p, sizeof(p), "logs/app.log");
    bt_files_pause(f);
    put_seq("logs/app.log", 10, 20);
    cr_assert_eq(unlink(p), 0);
    pump(50);
    cr_assert_eq(sink.n, 10);
    bt_files_resume(f);
    pump_for(20, 2000);
    pump(300);
    expect_seq(0, 20);
    cr_assert_eq(bt_files_active(f), 0);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_read_lines_total", ""), 0,
                 "per-file series removed");
    bt_files_save_positions(f);
    cr_assert_eq(saved_offset("logs/app.log"), UINT64_MAX);
    bt_files_free(f);
}

Test(files, restart_resumes_from_saved_position_without_duplicates)
{
    put_seq("logs/app.log", 0, 3);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    expect_seq(0, 3);
    bt_files_free(f);
    cr_assert_eq(saved_offset("logs/app.log"), 33);
    put_seq("logs/app.log", 3, 5);
    sink_clear(&sink);
    f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    expect_seq(3, 5);
    bt_files_free(f);
}

Test(files, saved_position_is_the_committed_offset_not_the_read_offset)
{
    put_seq("logs/app.log", 0, 3);
    sink.hold = true;
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    cr_assert_eq(sink.n, 3);
    cr_assert_eq(bt_files_save_positions(f), 0);
    cr_assert_eq(saved_offset("logs/app.log"), 0);
    put_seq("logs/app.log", 3, 4);
    pump_for(4, 2000);
    bt_segment_unref(sink.held[3], 1); /* the later chunk acked first: nothing moves */
    cr_assert_eq(bt_files_save_positions(f), 0);
    cr_assert_eq(saved_offset("logs/app.log"), 0);
    for (int i = 0; i < 3; i++)
        bt_segment_unref(sink.held[i], 1);
    cr_assert_eq(bt_files_save_positions(f), 0);
    cr_assert_eq(saved_offset("logs/app.log"), 44);
    bt_files_free(f);
}

Test(files, promtail_positions_file_is_resumed)
{
    put_seq("logs/app.log", 0, 4);
    char p[512], text[1024];
    path_of(p, sizeof(p), "logs/app.log");
    snprintf(text, sizeof(text), "positions:\n  %s: \"22\"\n", p);
    bt_tmpdir_write(dir, "positions.yaml", text, strlen(text));
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    expect_seq(2, 4);
    bt_files_free(f);
}

Test(files, corrupt_positions_file_does_not_stop_the_agent)
{
    put_seq("logs/app.log", 0, 2);
    bt_tmpdir_write(dir, "positions.yaml", "\0\0\0garbage: [", 14);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    expect_seq(0, 2);
    bt_files_free(f);
    cr_assert_eq(saved_offset("logs/app.log"), 22);
}

Test(files, replaced_file_with_reused_identity_starts_at_zero)
{
    put_seq("logs/app.log", 0, 4);
    char p[512], text[1024];
    path_of(p, sizeof(p), "logs/app.log");
    struct stat st;
    stat(p, &st);
    /* Same dev/inode as recorded, but the recorded fingerprint is of other content. */
    snprintf(text, sizeof(text),
             "positions:\n  \"%s\": \"22\"\n  \"bpftail-id:%s\": \"%llu:%llu:%016llx:%u\"\n", p, p,
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, 0x1234ull, 44);
    bt_tmpdir_write(dir, "positions.yaml", text, strlen(text));
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    expect_seq(0, 4);
    bt_files_free(f);
}

Test(files, offset_beyond_eof_starts_at_zero)
{
    put_seq("logs/app.log", 0, 2);
    char p[512], text[1024];
    path_of(p, sizeof(p), "logs/app.log");
    snprintf(text, sizeof(text), "positions:\n  %s: \"500\"\n", p);
    bt_tmpdir_write(dir, "positions.yaml", text, strlen(text));
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    expect_seq(0, 2);
    bt_files_free(f);
}

Test(files, rotation_while_stopped_resumes_the_renamed_file)
{
    put_seq("logs/app.log", 0, 5);
    struct bt_files *f = start("logs/app.log*", NULL, BT_START_BEGINNING, 0);
    expect_seq(0, 5);
    bt_files_free(f);
    char p[512], q[512];
    path_of(p, sizeof(p), "logs/app.log");
    path_of(q, sizeof(q), "logs/app.log.1");
    cr_assert_eq(rename(p, q), 0);
    put_seq("logs/app.log.1", 5, 7);
    put_seq("logs/app.log", 7, 9);
    sink_clear(&sink);
    f = start("logs/app.log*", NULL, BT_START_BEGINNING, 0);
    cr_assert_eq(sink.n, 4);
    /* Walk order is the directory's; check the set. */
    int seen[9] = {0};
    for (size_t i = 0; i < sink.n; i++) {
        int v = (int)strtol(sink.lines[i] + 5, NULL, 10);
        cr_assert(v >= 5 && v < 9, "unexpected %s", sink.lines[i]);
        seen[v]++;
    }
    for (int i = 5; i < 9; i++)
        cr_assert_eq(seen[i], 1);
    bt_files_free(f);
}

Test(files, start_at_end_skips_backlog_but_reads_new_lines)
{
    put_seq("logs/app.log", 0, 5);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_END, 0);
    cr_assert_eq(sink.n, 0);
    put_seq("logs/app.log", 5, 7);
    pump_for(2, 2000);
    expect_seq(5, 7);
    bt_files_free(f);
}

Test(files, ignore_older_leaves_old_files_until_they_change)
{
    fcfg.sync_period_ns = 100 * BT_NS_PER_MS;
    put_seq("logs/old.log", 0, 5);
    char p[512];
    path_of(p, sizeof(p), "logs/old.log");
    struct timespec ts[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 3600 * BT_NS_PER_SEC);
    pump(150);
    cr_assert_eq(sink.n, 0);
    cr_assert_eq(bt_files_active(f), 0);
    struct bt_buf b;
    bt_buf_init(&b, 1 << 20);
    bt_files_render_targets(f, &b);
    cr_assert(strstr(b.ptr, "\"state\":\"idle\""), "%s", b.ptr);
    bt_buf_free(&b);
    put_seq("logs/old.log", 5, 7);
    pump_for(2, 2000);
    expect_seq(5, 7);
    bt_files_free(f);
}

Test(files, pause_stops_reading_and_resume_catches_up)
{
    put_seq("logs/app.log", 0, 2);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    bt_files_pause(f);
    put_seq("logs/app.log", 2, 6);
    pump(100);
    cr_assert_eq(sink.n, 2);
    bt_files_resume(f);
    pump_for(6, 2000);
    expect_seq(0, 6);
    bt_files_free(f);
}

Test(files, partial_line_is_flushed_after_the_timeout)
{
    agent.line_flush_timeout_ns = 600 * BT_NS_PER_MS;
    put("logs/app.log", "whole\nhalf");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    cr_assert_eq(sink.n, 1);
    pump(50);
    cr_assert_eq(sink.n, 1);
    pump_for(2, 2000);
    cr_assert_eq(sink.n, 2);
    cr_assert_str_eq(sink.lines[1], "half");
    bt_files_free(f);
}

Test(files, flush_emits_partial_lines_at_shutdown)
{
    put("logs/app.log", "whole\nhalf");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    cr_assert_eq(sink.n, 1);
    bt_files_flush(f);
    cr_assert_eq(sink.n, 2);
    bt_files_free(f);
    cr_assert_eq(saved_offset("logs/app.log"), 10);
}

Test(files, poll_backend_reads_growth_and_finds_new_files)
{
    fcfg.watcher = "poll";
    fcfg.sync_period_ns = 100 * BT_NS_PER_MS;
    put("logs/a.log", "a1\n");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    cr_assert_str_eq(bt_files_watcher(f), "poll");
    put("logs/a.log", "a2\n");
    put("logs/b.log", "b1\n");
    pump_for(3, 3000);
    cr_assert_eq(sink.n, 3);
    bt_files_free(f);
}

Test(files, targets_json_lists_files_with_offsets)
{
    put("logs/app.log", "x\n");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    struct bt_buf b;
    bt_buf_init(&b, 1 << 20);
    cr_assert_eq(bt_files_render_targets(f, &b), 0);
    char want[700];
    snprintf(want, sizeof(want), "{\"path\":\"%s/logs/app.log\",\"inode\":", dir);
    cr_assert(strstr(b.ptr, want), "%s", b.ptr);
    cr_assert(strstr(b.ptr, "\"job\":\"varlogs\",\"labels\":{\"job\":\"varlogs\"}"), "%s", b.ptr);
    cr_assert(strstr(b.ptr, "\"read_offset\":2,\"committed_offset\":2,\"size\":2,"
                            "\"lag_bytes\":0,\"state\":\"tailing\""),
              "%s", b.ptr);
    bt_buf_free(&b);
    bt_files_free(f);
}

Test(files, unknown_watcher_name_is_a_clear_error)
{
    fcfg.watcher = "smoke-signals";
    char err[256] = "";
    cr_assert_null(bt_files_new(&fcfg, err, sizeof(err)));
    cr_assert(strstr(err, "smoke-signals"), "%s", err);
}

Test(files, readonly_positions_are_never_written)
{
    fcfg.positions_readonly = true;
    put("logs/app.log", "x\n");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    bt_files_free(f);
    struct stat st;
    cr_assert_eq(stat(posfile, &st), -1);
}

Test(files, idle_files_do_not_wake_the_loop_with_inotify)
{
    put("logs/app.log", "x\n");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump(250); /* the one save after the first acknowledgement */
    /* Nothing written: no timer and no fd fires within a sleep shorter than sync_period. */
    cr_assert_eq(bt_loop_run_once(loop, 300 * BT_NS_PER_MS), 0);
    put("logs/app.log", "y\n");
    cr_assert_geq(bt_loop_run_once(loop, 1000 * BT_NS_PER_MS), 1);
    cr_assert_eq(sink.n, 2);
    bt_files_free(f);
}

/* The reconcile is a safety net for lost events: while none come it waits twice as long each
 * time, up to 30 busy periods, and the first event brings the busy period back. */
Test(files, idle_reconcile_waits_longer_until_an_event_comes)
{
    const int64_t ms = BT_NS_PER_MS;
    fcfg.sync_period_ns = 20 * ms;
    fcfg.reconcile_ns = 20 * ms;
    put("logs/app.log", "x\n");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    cr_assert_eq(bt_files_reconcile_wait(f), 20 * ms);
    pump(400); /* 20 + 40 + 80 + 160 ms: the wait has grown */
    cr_assert_geq(bt_files_reconcile_wait(f), 160 * ms, "%lld",
                  (long long)bt_files_reconcile_wait(f));
    pump(1500);
    cr_assert_eq(bt_files_reconcile_wait(f), 600 * ms, "capped at 30 busy periods: %lld",
                 (long long)bt_files_reconcile_wait(f));
    put("logs/app.log", "y\n");
    pump_for(2, 2000);
    cr_assert_eq(sink.n, 2);
    cr_assert_eq(bt_files_reconcile_wait(f), 20 * ms, "an event brings the busy period back");
    bt_files_free(f);
}

Test(files, plain_path_without_glob_is_tailed)
{
    put("logs/exact.log", "e1\n");
    put("logs/other.log", "o1\n");
    struct bt_files *f = start("logs/exact.log", NULL, BT_START_BEGINNING, 0);
    cr_assert_eq(sink.n, 1);
    cr_assert_str_eq(sink.lines[0], "e1");
    put("logs/exact.log", "e2\n");
    pump_for(2, 2000);
    cr_assert_eq(sink.n, 2);
    bt_files_free(f);
}

Test(files, target_without_path_is_rejected)
{
    char err[256];
    struct bt_files *f = bt_files_new(&fcfg, err, sizeof(err));
    struct bt_labels l;
    bt_labels_init(&l);
    bt_labels_set(&l, "job", "x");
    cr_assert_eq(bt_files_add_target(f, "x", &l, BT_START_BEGINNING, 0, collect, &sink), -EINVAL);
    bt_labels_free(&l);
    bt_files_free(f);
}

/* Several rotations of different styles with writes interleaved with the loop: the sink must
 * see every line exactly once, in order. */
Test(files, repeated_mixed_rotations_while_writing_keep_the_exact_sequence)
{
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    char p[512], q[512];
    path_of(p, sizeof(p), "logs/app.log");
    int next = 0;
    for (int round = 0; round < 6; round++) {
        for (int k = 0; k < 10; k++) {
            put_seq("logs/app.log", next, next + 7);
            next += 7;
            bt_loop_run_once(loop, 0);
        }
        pump_for((size_t)next, 2000);
        if (round % 3 == 0) {
            snprintf(q, sizeof(q), "%s/logs/app.log.%d", dir, round);
            cr_assert_eq(rename(p, q), 0); /* rename + create */
        } else if (round % 3 == 1) {
            cr_assert_eq(truncate(p, 0), 0); /* copytruncate after everything was read */
        } else {
            cr_assert_eq(unlink(p), 0); /* delete + create */
        }
        bt_loop_run_once(loop, 0);
    }
    put_seq("logs/app.log", next, next + 5);
    next += 5;
    pump_for((size_t)next, 3000);
    pump(300);
    expect_seq(0, next);
    cr_assert_eq(bt_files_active(f), 1);
    bt_files_free(f);
}

Test(files, rotation_completed_between_two_loop_rounds_keeps_order)
{
    put_seq("logs/app.log", 0, 10);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    char p[512], q[512];
    path_of(p, sizeof(p), "logs/app.log");
    path_of(q, sizeof(q), "logs/app.log.1");
    int fd = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
    cr_assert_eq(rename(p, q), 0);
    for (int i = 10; i < 20; i++)
        dprintf(fd, "line-%05d\n", i);
    close(fd);
    put_seq("logs/app.log", 20, 30);
    pump_for(30, 3000);
    expect_seq(0, 30);
    bt_files_free(f);
}

Test(files, poll_backend_follows_rename_rotation_without_waiting_for_reconcile)
{
    fcfg.watcher = "poll"; /* sync_period stays 10s: only the content poll can find it */
    put_seq("logs/app.log", 0, 5);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    char p[512], q[512];
    path_of(p, sizeof(p), "logs/app.log");
    path_of(q, sizeof(q), "logs/app.old");
    cr_assert_eq(rename(p, q), 0);
    put_seq("logs/app.old", 5, 7);
    put_seq("logs/app.log", 7, 10);
    pump_for(10, 3000);
    expect_seq(0, 10);
    bt_files_free(f);
}

static int count_fds(void)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "/proc/%d/fd", (int)getpid());
    int n = 0;
    DIR *d = opendir(cmd);
    cr_assert_not_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

Test(files, free_closes_every_descriptor_it_opened)
{
    int before = count_fds();
    put_seq("logs/a.log", 0, 2);
    put_seq("logs/b.log", 0, 2);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    cr_assert_eq(bt_files_active(f), 2);
    cr_assert_gt(count_fds(), before);
    bt_files_free(f);
    cr_assert_eq(count_fds(), before);
}

Test(files, targets_json_is_valid_json_with_escaped_names)
{
    put("logs/we\"ird\\name.log", "x\n");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    struct bt_buf b;
    bt_buf_init(&b, 1 << 20);
    cr_assert_eq(bt_files_render_targets(f, &b), 0);
    json_error_t jerr;
    json_t *root = json_loads(b.ptr, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", jerr.text, b.ptr);
    json_t *files = json_object_get(json_array_get(root, 0), "files");
    cr_assert_eq(json_array_size(files), 1);
    char want[600];
    snprintf(want, sizeof(want), "%s/logs/we\"ird\\name.log", dir);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(files, 0), "path")), want);
    json_decref(root);
    bt_buf_free(&b);
    bt_files_free(f);
}

Test(files, partial_last_line_of_a_rotated_file_is_flushed_when_it_is_released)
{
    put("logs/app.log", "a\nb");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    char p[512], q[512];
    path_of(p, sizeof(p), "logs/app.log");
    path_of(q, sizeof(q), "logs/app.old");
    cr_assert_eq(rename(p, q), 0);
    put("logs/app.log", "c\n");
    pump_for(3, 2000);
    cr_assert_eq(sink.n, 3);
    cr_assert_str_eq(sink.lines[0], "a");
    bool b = false, c = false;
    for (size_t i = 1; i < 3; i++) {
        b |= strcmp(sink.lines[i], "b") == 0;
        c |= strcmp(sink.lines[i], "c") == 0;
    }
    cr_assert(b && c);
    bt_files_free(f);
}

Test(files, positions_are_saved_every_sync_period)
{
    poscfg.sync_period_ns = 50 * BT_NS_PER_MS;
    put_seq("logs/app.log", 0, 2);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump(200);
    cr_assert_eq(saved_offset("logs/app.log"), 22);
    put_seq("logs/app.log", 2, 3);
    pump(200);
    cr_assert_eq(saved_offset("logs/app.log"), 33);
    bt_files_free(f);
}

Test(files, lag_gauge_is_size_minus_committed)
{
    put_seq("logs/app.log", 0, 2);
    sink.hold = true;
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    bt_files_save_positions(f);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_position_lag_bytes", ""), 22);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_read_bytes_total", ""), 22);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_file_bytes_total", ""), 22);
    bt_segment_unref(sink.held[0], 1);
    bt_segment_unref(sink.held[1], 1);
    bt_files_save_positions(f);
    cr_assert_eq(bt_metrics_sum(metrics, "bpftail_position_lag_bytes", ""), 0);
    bt_files_free(f);
}

Test(files, idle_file_is_closed_and_reopened_by_its_next_write)
{
    agent.idle_close_ns = 100 * BT_NS_PER_MS;
    fcfg.sync_period_ns = 50 * BT_NS_PER_MS;
    put_seq("logs/app.log", 0, 3);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    int open_fds = count_fds();
    pump(400);
    cr_assert_eq(bt_files_active(f), 0, "idle file closed");
    cr_assert_eq(count_fds(), open_fds - 1);
    cr_assert_eq(saved_offset("logs/app.log"), 33, "parked with its position saved");
    put_seq("logs/app.log", 3, 5);
    pump_for(5, 2000);
    expect_seq(0, 5);
    cr_assert_eq(bt_files_active(f), 1);
    bt_files_free(f);
    cr_assert_eq(saved_offset("logs/app.log"), 55);
}

Test(files, idle_file_with_unacknowledged_lines_stays_open)
{
    agent.idle_close_ns = 50 * BT_NS_PER_MS;
    fcfg.sync_period_ns = 50 * BT_NS_PER_MS;
    sink.hold = true;
    put_seq("logs/app.log", 0, 3);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump(300);
    cr_assert_eq(bt_files_active(f), 1);
    for (size_t i = 0; i < sink.nheld; i++)
        bt_segment_unref(sink.held[i], 1);
    pump(300);
    cr_assert_eq(bt_files_active(f), 0);
    bt_files_free(f);
}

Test(files, acknowledged_lines_are_saved_soon_without_waiting_for_sync_period)
{
    put_seq("logs/app.log", 0, 2);
    sink.hold = true;
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump(300);
    cr_assert_eq(saved_offset("logs/app.log"), UINT64_MAX, "nothing acknowledged yet");
    bt_segment_unref(sink.held[0], 1);
    bt_segment_unref(sink.held[1], 1);
    pump(400); /* sync_period is 10 s: only the commit-triggered save can have run */
    cr_assert_eq(saved_offset("logs/app.log"), 22);
    bt_files_free(f);
}

Test(files, lost_events_trigger_a_rescan_that_finds_new_files)
{
    put("logs/a.log", "");
    put("logs/b.log", "");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    FILE *q = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    int maxq = 16384;
    if (q) {
        if (fscanf(q, "%d", &maxq) != 1)
            maxq = 16384;
        fclose(q);
    }
    if (maxq > 18000)
        cr_skip_test("max_queued_events=%d: too many lines to overflow in a unit test", maxq);
    char pa[512], pb[512];
    path_of(pa, sizeof(pa), "logs/a.log");
    path_of(pb, sizeof(pb), "logs/b.log");
    int fa = open(pa, O_WRONLY | O_APPEND | O_CLOEXEC),
        fb = open(pb, O_WRONLY | O_APPEND | O_CLOEXEC);
    int n = maxq + 200;
    for (int i = 0; i < n; i++)
        cr_assert_eq(write(i % 2 ? fb : fa, "x\n", 2), 2); /* alternating: no merging */
    close(fa);
    close(fb);
    put("logs/c.log", "found\n");  /* its create event is lost in the overflow */
    pump_for((size_t)n + 1, 5000); /* sync_period is 10 s: only the rescan can find c.log */
    cr_assert_eq(sink.n, (size_t)n + 1);
    bool found = false;
    for (size_t i = 0; i < sink.n; i++)
        found |= strcmp(sink.lines[i], "found") == 0;
    cr_assert(found);
    bt_files_free(f);
}

Test(files, directory_created_after_start_is_picked_up_by_events)
{
    struct bt_files *f = start("logs/app/sub/*.log", NULL, BT_START_BEGINNING, 0);
    char d[512];
    path_of(d, sizeof(d), "logs/app");
    cr_assert_eq(mkdir(d, 0755), 0);
    pump(30);
    path_of(d, sizeof(d), "logs/app/sub");
    cr_assert_eq(mkdir(d, 0755), 0);
    pump(30);
    put("logs/app/sub/x.log", "late\n");
    pump_for(1, 2000); /* sync_period is 10 s */
    cr_assert_eq(sink.n, 1);
    cr_assert_str_eq(sink.lines[0], "late");
    bt_files_free(f);
}

/* The labels of a target of "logs/*.log" with job varlogs and, if app, app=<app>. */
static void target_labels(struct bt_labels *l, const char *app)
{
    char glob[512];
    bt_labels_init(l);
    snprintf(glob, sizeof(glob), "%s/logs/*.log", dir);
    bt_labels_set(l, "__path__", glob);
    bt_labels_set(l, "job", "varlogs");
    if (app)
        bt_labels_set(l, "app", app);
}

Test(files, retired_target_reads_its_growing_file_to_the_end_then_goes)
{
    put_seq("logs/a.log", 0, 5);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump_for(5, 2000);
    struct bt_labels l;
    target_labels(&l, NULL);
    cr_assert_eq(bt_files_retire_target(f, "varlogs", &l, BT_START_BEGINNING, 0), 0);
    cr_assert_eq(bt_files_retire_target(f, "varlogs", &l, BT_START_BEGINNING, 0), -ENOENT,
                 "already retired");
    for (int i = 5; i < 15; i++) { /* still written to, faster than rotate_grace (100 ms) */
        put_seq("logs/a.log", i, i + 1);
        pump(30);
    }
    put_seq("logs/b.log", 0, 1); /* a new file: not the retired target's any more */
    pump(400);
    expect_seq(0, 15);
    cr_assert_eq(bt_files_active(f), 0, "closed once quiet and acknowledged");
    struct bt_buf js;
    bt_buf_init(&js, 1 << 20);
    cr_assert_eq(bt_files_render_targets(f, &js), 0);
    cr_assert_null(strstr(js.ptr, "a.log"), "the target is gone: %s", js.ptr);
    bt_buf_free(&js);
    put_seq("logs/a.log", 15, 16);
    pump(200);
    cr_assert_eq(sink.n, 15, "not read after it went");
    bt_files_save_positions(f);
    char p[512];
    path_of(p, sizeof(p), "logs/a.log");
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(saved_offset("logs/a.log"), (uint64_t)st.st_size - 11,
                 "its position stays where it was read to");
    bt_labels_free(&l);
    bt_files_free(f);
}

Test(files, retired_target_waits_for_acknowledgements_before_it_goes)
{
    sink.hold = true;
    put_seq("logs/a.log", 0, 5);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump_for(5, 2000);
    struct bt_labels l;
    target_labels(&l, NULL);
    cr_assert_eq(bt_files_retire_target(f, "varlogs", &l, BT_START_BEGINNING, 0), 0);
    pump(400);
    cr_assert_eq(bt_files_active(f), 1, "lines in flight keep the file open");
    struct bt_buf js;
    bt_buf_init(&js, 1 << 20);
    cr_assert_eq(bt_files_render_targets(f, &js), 0);
    cr_assert_not_null(strstr(js.ptr, "\"retiring\":true"), "%s", js.ptr);
    bt_buf_free(&js);
    for (size_t i = 0; i < sink.nheld; i++)
        bt_segment_unref(sink.held[i], 1);
    sink.nheld = 0;
    pump(400);
    cr_assert_eq(bt_files_active(f), 0);
    bt_files_save_positions(f);
    cr_assert_eq(saved_offset("logs/a.log"), 5 * 11);
    bt_labels_free(&l);
    bt_files_free(f);
}

Test(files, new_label_set_adopts_the_retired_targets_files_without_reading_twice)
{
    put_seq("logs/a.log", 0, 5);
    put("logs/a.log", "line-0000"); /* a partial line, completed under the new labels */
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump_for(5, 2000);
    struct bt_labels old, nw;
    target_labels(&old, NULL);
    target_labels(&nw, "v2");
    cr_assert_eq(bt_files_retire_target(f, "varlogs", &old, BT_START_BEGINNING, 0), 0);
    cr_assert_eq(bt_files_add_target(f, "varlogs", &nw, BT_START_BEGINNING, 0, collect, &sink), 0);
    put("logs/a.log", "5\n");
    put_seq("logs/a.log", 6, 10);
    pump_for(10, 2000);
    pump(400); /* past rotate_grace: the retired target is gone, the file stays open */
    expect_seq(0, 10);
    for (size_t i = 0; i < 5; i++)
        cr_assert_str_eq(sink.apps[i], "");
    for (size_t i = 5; i < 10; i++)
        cr_assert_str_eq(sink.apps[i], "v2");
    cr_assert_eq(bt_files_active(f), 1);
    put_seq("logs/a.log", 10, 11);
    pump_for(11, 2000);
    expect_seq(0, 11);
    bt_labels_free(&old);
    bt_labels_free(&nw);
    bt_files_free(f);
}

Test(files, retired_target_listed_again_goes_on_as_before)
{
    put_seq("logs/a.log", 0, 5);
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump_for(5, 2000);
    struct bt_labels l;
    target_labels(&l, NULL);
    cr_assert_eq(bt_files_retire_target(f, "varlogs", &l, BT_START_BEGINNING, 0), 0);
    cr_assert_eq(bt_files_add_target(f, "varlogs", &l, BT_START_BEGINNING, 0, collect, &sink), 0);
    pump(400);
    cr_assert_eq(bt_files_active(f), 1, "live again: not closed after rotate_grace");
    put_seq("logs/a.log", 5, 8);
    put_seq("logs/b.log", 0, 1); /* and new files are found again */
    pump_for(9, 2000);
    cr_assert_eq(sink.n, 9);
    cr_assert_eq(bt_files_active(f), 2);
    bt_labels_free(&l);
    bt_files_free(f);
}

/* ---- rotated records of files that are gone ---- */

static void mkdirs(const char *rel)
{
    char p[512];
    path_of(p, sizeof(p), rel);
    for (char *s = p + strlen(dir) + 1; (s = strchr(s, '/')); s++) {
        *s = '\0';
        mkdir(p, 0755);
        *s = '/';
    }
    mkdir(p, 0755);
}

/* A rotated record as a save writes it for a file last known as orig_rel, now at now_rel. */
static void seed_rotated(struct bt_positions *p, const char *orig_rel, const char *now_rel)
{
    char orig[512], now[512], key[1200];
    struct stat st;
    path_of(orig, sizeof(orig), orig_rel);
    path_of(now, sizeof(now), now_rel);
    cr_assert_eq(stat(now, &st), 0);
    snprintf(key, sizeof(key), "bpftail-rotated:%llu:%llu:%s", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino, orig);
    struct bt_position pos = {
        .offset = 1, .has_identity = true, .dev = st.st_dev, .ino = st.st_ino};
    cr_assert_eq(bt_positions_set(p, key, &pos), 0);
}

/* How many rotated records in the saved file were last known under a path with rel in it. */
static size_t saved_rotated(const char *rel)
{
    struct bt_positions *pos = bt_positions_new(posfile, true);
    bt_positions_load(pos, NULL);
    size_t it = 0, n = 0;
    const char *key;
    const struct bt_position *r;
    while (bt_positions_next(pos, &it, &key, &r))
        n += strncmp(key, "bpftail-rotated:", 16) == 0 && strstr(key, rel) != NULL;
    bt_positions_free(pos);
    return n;
}

Test(files, rotated_records_of_files_that_are_gone_are_dropped)
{
    /* Records no target will claim again (a deleted pod's logs, under a directory no glob
     * matches any more): the one whose directory is gone and the one whose file was deleted
     * go; the one whose file is still there (renamed) stays, it may be recovered yet. */
    struct bt_positions *p = bt_positions_new(posfile, false);
    cr_assert_not_null(p);
    mkdirs("pods/ns_gone_uid1/c");
    put("pods/ns_gone_uid1/c/0.log", "x\n");
    seed_rotated(p, "pods/ns_gone_uid1/c/0.log", "pods/ns_gone_uid1/c/0.log");
    mkdirs("pods/ns_deleted_uid2/c");
    put("pods/ns_deleted_uid2/c/0.log", "x\n");
    seed_rotated(p, "pods/ns_deleted_uid2/c/0.log", "pods/ns_deleted_uid2/c/0.log");
    mkdirs("pods/ns_kept_uid3/c");
    put("pods/ns_kept_uid3/c/0.log.1", "x\n");
    seed_rotated(p, "pods/ns_kept_uid3/c/0.log", "pods/ns_kept_uid3/c/0.log.1");
    cr_assert_eq(bt_positions_save(p), 0);
    bt_positions_free(p);
    char q[512];
    path_of(q, sizeof(q), "pods/ns_gone_uid1/c/0.log");
    cr_assert_eq(unlink(q), 0);
    path_of(q, sizeof(q), "pods/ns_gone_uid1/c");
    cr_assert_eq(rmdir(q), 0);
    path_of(q, sizeof(q), "pods/ns_gone_uid1");
    cr_assert_eq(rmdir(q), 0);
    path_of(q, sizeof(q), "pods/ns_deleted_uid2/c/0.log");
    cr_assert_eq(unlink(q), 0);

    /* And a file a target still has open after its name went: its record stays while it is
     * read, even though its directory no longer holds it. */
    put_seq("logs/app.log", 0, 2);
    sink.hold = true;
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    cr_assert_eq(sink.n, 2);
    path_of(q, sizeof(q), "logs/app.log");
    cr_assert_eq(unlink(q), 0);
    /* The deletion is seen (the file read on without its name), whenever the loop gets to it. */
    for (int64_t end = bt_mono_ns() + 10 * BT_NS_PER_SEC;
         saved_rotated("logs/app.log") == 0 && bt_mono_ns() < end;) {
        bt_loop_run_once(loop, 5 * BT_NS_PER_MS);
        cr_assert_eq(bt_files_save_positions(f), 0);
    }
    cr_assert_eq(saved_rotated("ns_gone_uid1"), 0, "its directory is gone");
    cr_assert_eq(saved_rotated("ns_deleted_uid2"), 0, "its file is gone");
    cr_assert_eq(saved_rotated("ns_kept_uid3"), 1, "its file is still there");
    cr_assert_eq(saved_rotated("logs/app.log"), 1, "open and not all acknowledged");
    bt_segment_unref(sink.held[0], 1);
    bt_segment_unref(sink.held[1], 1);
    /* rotate_grace at EOF and all acknowledged: closed, its record with it. */
    for (int64_t end = bt_mono_ns() + 10 * BT_NS_PER_SEC;
         bt_files_active(f) > 0 && bt_mono_ns() < end;)
        bt_loop_run_once(loop, 5 * BT_NS_PER_MS);
    cr_assert_eq(bt_files_active(f), 0);
    cr_assert_eq(bt_files_save_positions(f), 0);
    cr_assert_eq(saved_rotated("logs/app.log"), 0);
    cr_assert_eq(saved_rotated("ns_kept_uid3"), 1);
    bt_files_free(f);
}

Test(files, events_within_the_coalescing_window_are_handled_together_at_its_end)
{
    /* After a batch of file events is handled the watcher is not listened to for coalesce_ns;
     * what is written meanwhile is read once that window ends (and not lost). The window is
     * long here so that "not yet" cannot depend on the machine's speed. */
    fcfg.coalesce_ns = 3 * BT_NS_PER_SEC;
    put("logs/app.log", "");
    struct bt_files *f = start("logs/*.log", NULL, BT_START_BEGINNING, 0);
    pump(100);
    put_seq("logs/app.log", 0, 1);
    pump_for(1, 2000); /* the first event of a quiet watcher is handled at once */
    expect_seq(0, 1);
    put_seq("logs/app.log", 1, 4);
    pump(200);
    cr_assert_eq(sink.n, 1, "writes within the window wait for its end");
    pump_for(4, 6000);
    expect_seq(0, 4);
    bt_files_free(f);
}
