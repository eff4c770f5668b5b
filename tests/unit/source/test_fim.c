/*
 * File-integrity monitoring tests. Config parsing runs everywhere; the event tests load the
 * real BPF programs (root, BTF) and FAIL with a clear message when they cannot. Accesses are
 * made by a forked child (bpftail ignores its own accesses), stepped through pipes so the
 * parent can check the entries each step produced while the child is still alive.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "push/batch.h"
#include "push/client.h"
#include "config/config.h"
#include "fake_loki.h"
#include "source/fim.h"
#include "core/labels.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "config/node.h"
#include "tmpdir.h"
#include "util/log.h"
#include "util/timeutil.h"
#include "watch/watch_bpf.h"

#define MAX_ENT 64

struct ent {
    char labels[512];
    char line[2048];
    int64_t ts_ns;
};

static struct ent g_ent[MAX_ENT];
static int g_n;
static char g_dir[256];
static struct bt_node *g_root;

static void sink(void *ctx, const struct bt_entry *e)
{
    size_t len;
    const char *c;

    (void)ctx;
    cr_assert_null(e->seg);
    if (g_n >= MAX_ENT)
        return;
    c = bt_labels_canon(e->labels, &len);
    snprintf(g_ent[g_n].labels, sizeof(g_ent[g_n].labels), "%s", c);
    snprintf(g_ent[g_n].line, sizeof(g_ent[g_n].line), "%.*s", (int)e->line_len, e->line);
    g_ent[g_n].ts_ns = e->ts_ns;
    g_n++;
}

static const struct bt_node *parse(const char *yaml)
{
    char err[256];

    bt_node_free(g_root);
    g_root = bt_yaml_parse(yaml, strlen(yaml), "fim.yaml", err, sizeof(err));
    cr_assert_not_null(g_root, "yaml: %s", err);
    return bt_node_get(g_root, "fim");
}

static void setup(void)
{
    g_n = 0;
    g_root = NULL;
    bt_log_set_level(BT_LOG_WARN);
    cr_assert_eq(bt_tmpdir_make(g_dir, sizeof(g_dir)), 0);
}

static void teardown(void)
{
    bt_node_free(g_root);
    bt_tmpdir_remove(g_dir);
}

TestSuite(fim, .init = setup, .fini = teardown, .timeout = 60);

Test(fim, null_config_gives_null_without_error)
{
    char err[128] = "x";

    cr_assert_null(bt_fim_new(NULL, NULL, NULL, sink, NULL, err, sizeof(err)));
    cr_assert_str_eq(err, "");
}

static void expect_config_error(const char *yaml, const char *want)
{
    char err[512] = "";

    cr_assert_null(bt_fim_new(parse(yaml), NULL, NULL, sink, NULL, err, sizeof(err)),
                   "accepted: %s", yaml);
    cr_assert(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
}

Test(fim, bad_configs_are_errors_naming_the_place)
{
    expect_config_error("fim:\n  paths: [/etc/passwd]\n  colour: blue\n",
                        "fim.yaml:3:3: fim: unknown key \"colour\"");
    expect_config_error("fim:\n  paths: [/etc/passwd]\n  ops: [write, explode]\n",
                        "fim.yaml:3:16: fim: unknown op \"explode\"");
    expect_config_error("fim:\n  paths: [etc/passwd]\n", "must be absolute");
    expect_config_error("fim:\n  rules:\n    - ops: [write]\n", "needs `paths`");
    expect_config_error("fim:\n  rules:\n    - paths: [/x]\n      when: now\n",
                        "unknown key \"when\" in a rule");
    expect_config_error("fim:\n  job: fim\n", "no paths to watch");
    expect_config_error("fim:\n  paths: [/x]\n  reconcile_period: 1ms\n", "reconcile_period");
}

#ifdef BT_HAVE_BPF
/* ---- a child that performs accesses step by step ---- */

typedef void (*step_fn)(int step);

struct child {
    pid_t pid;
    int to_parent, to_child;
};

static struct child start_child(step_fn fn, int steps)
{
    int up[2], down[2];
    struct child c;
    char b = 0;

    cr_assert_eq(pipe(up), 0);
    cr_assert_eq(pipe(down), 0);
    c.pid = fork();
    cr_assert_geq(c.pid, 0);
    if (c.pid == 0) {
        prctl(PR_SET_NAME, "fimchild", 0, 0, 0);
        close(up[0]);
        close(down[1]);
        for (int i = 0; i < steps; i++) {
            fn(i);
            if (write(up[1], &b, 1) != 1 || read(down[0], &b, 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    c.to_parent = up[0];
    c.to_child = down[1];
    return c;
}

/* Waits for the child's next step, then runs the loop until `want` entries exist in total. */
static void step(struct child *c, struct bt_loop *l, int want)
{
    int64_t end;
    char b;

    cr_assert_eq(read(c->to_parent, &b, 1), 1, "child died");
    end = bt_mono_ns() + 2 * BT_NS_PER_SEC;
    while (g_n < want && bt_mono_ns() < end)
        bt_loop_run_once(l, 50 * BT_NS_PER_MS);
    bt_loop_run_once(l, 20 * BT_NS_PER_MS);
}

static void finish(struct child *c)
{
    char b = 0;
    int st;

    cr_assert_eq(write(c->to_child, &b, 1), 1);
    cr_assert_eq(waitpid(c->pid, &st, 0), c->pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
    close(c->to_parent);
    close(c->to_child);
}

static void next(struct child *c)
{
    char b = 0;
    cr_assert_eq(write(c->to_child, &b, 1), 1);
}

static struct bt_fim *start_fim(const char *yaml, struct bt_loop **l, struct bt_metrics **m)
{
    char err[512] = "";
    struct bt_fim *f;

    *l = bt_loop_new();
    cr_assert_not_null(*l);
    *m = bt_metrics_new();
    f = bt_fim_new(parse(yaml), *l, *m, sink, NULL, err, sizeof(err));
    cr_assert_not_null(f, "fim: %s", err);
    cr_assert_str_eq(bt_fim_backend(f), "bpf",
                     "the BPF programs did not load: FIM tests need root or CAP_BPF + CAP_PERFMON "
                     "and a kernel with /sys/kernel/btf/vmlinux");
    return f;
}

static const struct ent *find(const char *op, const char *needle)
{
    char lbl[64];

    snprintf(lbl, sizeof(lbl), "op=\"%s\"", op);
    for (int i = 0; i < g_n; i++)
        if (strstr(g_ent[i].labels, lbl) && (!needle || strstr(g_ent[i].line, needle)))
            return &g_ent[i];
    return NULL;
}

static char p_secret[512], p_conf[512], p_new[512], p_new2[512], p_alias[512], p_other[512];

static void paths_init(void)
{
    snprintf(p_secret, sizeof(p_secret), "%s/secret", g_dir);
    snprintf(p_conf, sizeof(p_conf), "%s/conf.d", g_dir);
    snprintf(p_new, sizeof(p_new), "%s/conf.d/new.conf", g_dir);
    snprintf(p_new2, sizeof(p_new2), "%s/conf.d/moved.conf", g_dir);
    snprintf(p_other, sizeof(p_other), "%s/other", g_dir);
    snprintf(p_alias, sizeof(p_alias), "%s/other/alias", g_dir);
    cr_assert_eq(bt_tmpdir_write(g_dir, "secret", "s3cret\n", 7), 0);
    cr_assert_eq(mkdir(p_conf, 0755), 0);
    cr_assert_eq(mkdir(p_other, 0755), 0);
}

static void child_access(int i)
{
    int fd;

    switch (i) {
    case 0: /* read */
        fd = open(p_secret, O_RDONLY);
        close(fd);
        break;
    case 1:
        fd = open(p_secret, O_WRONLY | O_APPEND);
        if (write(fd, "x\n", 2) != 2)
            _exit(2);
        close(fd);
        break;
    case 2: chmod(p_secret, 0600); break;
    case 3:
        fd = open(p_new, O_WRONLY | O_CREAT | O_EXCL, 0644);
        close(fd);
        break;
    case 4: rename(p_new, p_new2); break;
    case 5: truncate(p_new2, 0); break;
    case 6: unlink(p_new2); break;
    case 7:
        if (chown(p_secret, getuid(), getgid()) != 0)
            _exit(4);
        break;
    }
}

Test(fim, accesses_become_entries_with_labels_and_process_fields)
{
    struct bt_loop *l;
    struct bt_metrics *m;
    struct bt_fim *f;
    struct child c;
    char yaml[2048], want[256], exe[512];
    const struct ent *e;
    ssize_t n;
    int64_t t0 = bt_now_ns();

    paths_init();
    snprintf(yaml, sizeof(yaml),
             "fim:\n  host: testhost\n  labels: {env: test}\n  rules:\n"
             "    - paths: [%s]\n      ops: [read, write, chmod, chown]\n"
             "    - paths: [%s/]\n      ops: [create, rename, truncate, delete]\n",
             p_secret, p_conf);
    f = start_fim(yaml, &l, &m);
    c = start_child(child_access, 8);
    for (int i = 0; i < 8; i++) {
        step(&c, l, i + 1);
        if (i < 7)
            next(&c);
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    cr_assert_gt(n, 0);
    exe[n] = '\0';

    e = find("open", p_secret);
    cr_assert_not_null(e, "read/open entry (%d entries)", g_n);
    cr_assert_str_eq(e->labels, "{env=\"test\", host=\"testhost\", job=\"fim\", op=\"open\"}");
    snprintf(want, sizeof(want), "pid=%d ppid=%d uid=%u", c.pid, getpid(), getuid());
    cr_assert(strstr(e->line, want), "%s lacks %s", e->line, want);
    cr_assert(strstr(e->line, "comm=fimchild"), "%s", e->line);
    snprintf(want, sizeof(want), "exe=%s", exe);
    cr_assert(strstr(e->line, want), "%s lacks %s", e->line, want);
    cr_assert(strstr(e->line, "cgroup_id="), "%s", e->line);
    cr_assert(strstr(e->line, "access=read"), "%s", e->line);
    cr_assert(e->ts_ns >= t0 - BT_NS_PER_SEC && e->ts_ns <= bt_now_ns(), "event time");

    e = find("write", p_secret);
    cr_assert_not_null(e, "write entry");
    cr_assert(strstr(e->line, "bytes=2"), "%s", e->line);
    cr_assert(strstr(e->line, "inode="), "%s", e->line);
    cr_assert_not_null(find("chmod", p_secret), "chmod entry");
    cr_assert_not_null(find("create", p_new), "create entry");
    e = find("rename", p_new);
    cr_assert_not_null(e, "rename entry");
    snprintf(want, sizeof(want), "new_path=%s", p_new2);
    cr_assert(strstr(e->line, want), "%s lacks %s", e->line, want);
    cr_assert_not_null(find("truncate", p_new2), "truncate entry");
    cr_assert_not_null(find("unlink", p_new2), "unlink entry");
    cr_assert_not_null(find("chown", p_secret), "chown entry");
    cr_assert_eq(g_n, 8, "exactly one entry per access, got %d", g_n);
    cr_assert_eq(bt_metrics_sum(m, "bpftail_fim_events_total", "op=\"write\""), 1);
    finish(&c);
    bt_fim_free(f);
    bt_metrics_free(m);
    bt_loop_free(l);
}

static void child_link_write(int i)
{
    int fd;

    if (i == 0) {
        if (link(p_secret, p_alias) != 0)
            _exit(3);
        fd = open(p_alias, O_WRONLY | O_APPEND);
        if (write(fd, "via link\n", 9) != 9)
            _exit(2);
        close(fd);
        chmod(p_secret, 0640); /* not asked for: must not show */
    }
}

Test(fim, write_through_a_hard_link_is_reported_under_the_watched_path)
{
    struct bt_loop *l;
    struct bt_metrics *m;
    struct bt_fim *f;
    struct child c;
    char yaml[1024], want[600];
    const struct ent *e;

    paths_init();
    snprintf(yaml, sizeof(yaml), "fim:\n  paths: [%s]\n  ops: [write]\n", p_secret);
    f = start_fim(yaml, &l, &m);
    c = start_child(child_link_write, 1);
    step(&c, l, 1);
    e = find("write", NULL);
    cr_assert_not_null(e, "write via hard link");
    snprintf(want, sizeof(want), "path=%s via=alias", p_secret);
    cr_assert(strstr(e->line, want), "%s lacks %s", e->line, want);
    cr_assert_eq(g_n, 1, "chmod is not in ops, got %d entries", g_n);
    finish(&c);
    bt_fim_free(f);
    bt_metrics_free(m);
    bt_loop_free(l);
}

static char p_tmp[512];

static void child_replace(int i)
{
    int fd;

    if (i == 0) {
        fd = open(p_tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        close(fd);
        rename(p_tmp, p_secret); /* like vipw or an editor saving */
    } else {
        fd = open(p_secret, O_WRONLY | O_APPEND);
        if (write(fd, "new\n", 4) != 4)
            _exit(2);
        close(fd);
    }
}

Test(fim, a_replaced_file_is_followed_to_its_new_inode)
{
    struct bt_loop *l;
    struct bt_metrics *m;
    struct bt_fim *f;
    struct child c;
    char yaml[1024];
    struct stat st;

    paths_init();
    snprintf(p_tmp, sizeof(p_tmp), "%s/secret.tmp", g_dir);
    snprintf(yaml, sizeof(yaml), "fim:\n  paths: [%s]\n", p_secret);
    f = start_fim(yaml, &l, &m);
    c = start_child(child_replace, 2);
    step(&c, l, 1);
    cr_assert_not_null(find("rename", p_secret), "rename onto the watched path");
    cr_assert_eq(stat(p_secret, &st), 0);
    cr_assert_eq(bt_fim_watched_files(f), 1, "old inode dropped, new one watched");
    next(&c);
    step(&c, l, 2);
    cr_assert_not_null(find("write", p_secret), "write to the new inode");
    finish(&c);
    bt_fim_free(f);
    bt_metrics_free(m);
    bt_loop_free(l);
}

static void child_glob(int i)
{
    char p[600];

    (void)i;
    snprintf(p, sizeof(p), "%s/conf.d/a.conf", g_dir);
    truncate(p, 0);
    snprintf(p, sizeof(p), "%s/conf.d/b.txt", g_dir);
    truncate(p, 0);
    snprintf(p, sizeof(p), "%s/conf.d/c.conf", g_dir);
    close(open(p, O_WRONLY | O_CREAT, 0644));
}

Test(fim, globs_match_existing_and_new_files_only)
{
    struct bt_loop *l;
    struct bt_metrics *m;
    struct bt_fim *f;
    struct child c;
    char yaml[1024], dir[512];

    paths_init();
    snprintf(dir, sizeof(dir), "%s/conf.d", g_dir);
    cr_assert_eq(bt_tmpdir_write(dir, "a.conf", "a", 1), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "b.txt", "b", 1), 0);
    snprintf(yaml, sizeof(yaml), "fim:\n  paths: [\"%s/*.conf\"]\n", dir);
    f = start_fim(yaml, &l, &m);
    cr_assert_eq(bt_fim_watched_files(f), 1);
    c = start_child(child_glob, 1);
    step(&c, l, 2);
    cr_assert_not_null(find("truncate", "a.conf"), "existing match");
    cr_assert_not_null(find("create", "c.conf"), "new match");
    cr_assert_null(find("truncate", "b.txt"), "not matching the glob");
    cr_assert_eq(g_n, 2, "got %d", g_n);
    finish(&c);
    bt_fim_free(f);
    bt_metrics_free(m);
    bt_loop_free(l);
}

/* ---- all the way to a Loki server: FIM -> batcher -> client -> test Loki ---- */

struct shipper {
    struct bt_batcher *bb;
    struct bt_client *client;
};

static void ship_ready(void *ctx, struct bt_batch *b)
{
    struct shipper *sh = ctx;
    cr_assert_eq(bt_client_submit(sh->client, b), 0);
}

static void ship_sink(void *ctx, const struct bt_entry *e)
{
    struct shipper *sh = ctx;
    cr_assert_eq(bt_batcher_add(sh->bb, e, bt_mono_ns()), 0);
    g_n++;
}

static void child_write_secret(int i)
{
    int fd;

    (void)i;
    fd = open(p_secret, O_WRONLY | O_APPEND);
    if (write(fd, "tampered\n", 9) != 9)
        _exit(2);
    close(fd);
}

Test(fim, entries_reach_the_test_loki_with_labels_and_process_fields)
{
    struct bt_fake_loki *loki = bt_fake_loki_start();
    struct bt_client_config ccfg;
    struct bt_batcher_config bcfg = {.batchsize = 1 << 20, .batchwait_ns = 50 * BT_NS_PER_MS};
    struct shipper sh;
    struct bt_fake_entry fe;
    struct bt_metrics *m = bt_metrics_new();
    struct bt_loop *l = bt_loop_new();
    struct bt_batch *done;
    struct bt_fim *f;
    struct child c;
    char yaml[1024], err[256] = "", want[256];

    cr_assert_not_null(loki);
    paths_init();
    memset(&ccfg, 0, sizeof(ccfg));
    ccfg.url = (char *)bt_fake_loki_url(loki);
    ccfg.batchwait_ns = bcfg.batchwait_ns;
    ccfg.batchsize = bcfg.batchsize;
    ccfg.min_backoff_ns = 10 * BT_NS_PER_MS;
    ccfg.max_backoff_ns = 40 * BT_NS_PER_MS;
    ccfg.max_retries = 3;
    ccfg.timeout_ns = 5 * BT_NS_PER_SEC;
    sh.client = bt_client_new(&ccfg, m);
    cr_assert_not_null(sh.client);
    sh.bb = bt_batcher_new(&bcfg, ship_ready, NULL, &sh);
    cr_assert_not_null(sh.bb);
    snprintf(yaml, sizeof(yaml), "fim:\n  host: h1\n  paths: [%s]\n  ops: [write]\n", p_secret);
    f = bt_fim_new(parse(yaml), l, m, ship_sink, &sh, err, sizeof(err));
    cr_assert_not_null(f, "%s", err);
    cr_assert_str_eq(bt_fim_backend(f), "bpf",
                     "BPF did not load: needs root or CAP_BPF+CAP_PERFMON");

    c = start_child(child_write_secret, 1);
    step(&c, l, 1);
    bt_batcher_flush(sh.bb);
    cr_assert_eq(bt_fake_loki_wait_entries(loki, 1, 5000), 0, "nothing reached Loki");
    cr_assert_eq(bt_fake_loki_entry(loki, 0, &fe), 0);
    cr_assert_str_eq(fe.labels, "{host=\"h1\", job=\"fim\", op=\"write\"}");
    snprintf(want, sizeof(want), "op=write path=%s ", p_secret);
    cr_assert(strncmp(fe.line, want, strlen(want)) == 0, "%s", fe.line);
    snprintf(want, sizeof(want), " pid=%d ppid=%d uid=%u", c.pid, getpid(), getuid());
    cr_assert(strstr(fe.line, want), "%s lacks %s", fe.line, want);
    cr_assert(strstr(fe.line, " comm=fimchild "), "%s", fe.line);
    cr_assert(strstr(fe.line, " exe=/"), "%s", fe.line);
    cr_assert(llabs(fe.ts_ns - bt_now_ns()) < 10 * BT_NS_PER_SEC, "event time, not zero");
    finish(&c);
    bt_fim_free(f);
    bt_client_stop(sh.client, bt_mono_ns() + BT_NS_PER_SEC);
    while ((done = bt_client_take_done(sh.client)))
        bt_batch_release(done);
    bt_client_free(sh.client);
    bt_batcher_free(sh.bb);
    bt_metrics_free(m);
    bt_loop_free(l);
    bt_fake_loki_stop(loki);
}
Test(fim, a_process_gone_before_dispatch_still_has_its_executable_full_path)
{
    struct bt_loop *l;
    struct bt_metrics *m;
    struct bt_fim *f;
    char yaml[1024], exe[512], want[600];
    int64_t end;
    pid_t pid;
    int st;
    ssize_t n;

    paths_init();
    snprintf(yaml, sizeof(yaml), "fim:\n  paths: [%s]\n  ops: [write]\n", p_secret);
    f = start_fim(yaml, &l, &m);
    pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_NAME, "shortlived", 0, 0, 0);
        child_write_secret(0);
        _exit(0);
    }
    cr_assert_eq(waitpid(pid, &st, 0), pid); /* gone, and reaped, before any dispatch */
    end = bt_mono_ns() + 2 * BT_NS_PER_SEC;
    while (g_n < 1 && bt_mono_ns() < end)
        bt_loop_run_once(l, 50 * BT_NS_PER_MS);
    cr_assert_eq(g_n, 1, "got %d entries", g_n);
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    cr_assert_gt(n, 0);
    exe[n] = '\0';
    snprintf(want, sizeof(want), " comm=shortlived exe=%s ", exe);
    cr_assert(strstr(g_ent[0].line, want), "%s lacks %s", g_ent[0].line, want);
    bt_fim_free(f);
    bt_metrics_free(m);
    bt_loop_free(l);
}

#else
Test(fim, event_tests_skipped)
{
    cr_skip_test("built with -DBT_BPF=OFF: the FIM tests that load real BPF programs are "
                 "skipped; configure with -DBT_BPF=ON to run them");
}
#endif

Test(fim, without_bpf_it_reports_backend_none)
{
    char err[256] = "", yaml[512];
    struct bt_loop *l = bt_loop_new();
    struct bt_fim *f;

    snprintf(yaml, sizeof(yaml), "fim:\n  paths: [%s]\n", g_dir);
    bt_log_set_level(BT_LOG_ERROR);
    bt_watch_bpf_refuse(-EPERM);
    f = bt_fim_new(parse(yaml), l, NULL, sink, NULL, err, sizeof(err));
    bt_watch_bpf_refuse(0);
    cr_assert_not_null(f, "%s", err);
    cr_assert_str_eq(bt_fim_backend(f), "none");
    cr_assert_eq(bt_fim_watched_files(f), 0);
    bt_fim_free(f);
    bt_loop_free(l);
}

Test(fim, without_a_loop_it_only_validates)
{
    char err[256] = "", yaml[512];
    struct bt_fim *f;

    snprintf(yaml, sizeof(yaml), "fim:\n  paths: [%s]\n", g_dir);
    f = bt_fim_new(parse(yaml), NULL, NULL, sink, NULL, err, sizeof(err));
    cr_assert_not_null(f, "%s", err);
    cr_assert_str_eq(bt_fim_backend(f), "none", "nothing loaded for -check-syntax");
    bt_fim_free(f);
}

Test(fim, op_names_parse_to_the_kernel_operations)
{
    uint32_t m = 0;

    cr_assert_eq(bt_fe_op_parse("write", &m), 0);
    cr_assert_eq(m, BT_FE_OPBIT(BT_FE_WRITE));
    cr_assert_eq(bt_fe_op_parse("delete", &m), 0);
    cr_assert_eq(m, BT_FE_OPBIT(BT_FE_UNLINK) | BT_FE_OPBIT(BT_FE_RMDIR));
    cr_assert_eq(bt_fe_op_parse("attrib", &m), 0);
    cr_assert_eq(m, BT_FE_OPBIT(BT_FE_CHMOD) | BT_FE_OPBIT(BT_FE_CHOWN));
    cr_assert_eq(bt_fe_op_parse("open", &m), 0);
    cr_assert_eq(m, BT_FE_OPBIT(BT_FE_OPEN));
    cr_assert_eq(bt_fe_op_parse("close_write", &m), 0);
    cr_assert_eq(m, BT_FE_OPBIT(BT_FE_CLOSE_WRITE));
    cr_assert_eq(bt_fe_op_parse("WRITE", &m), -EINVAL);
    cr_assert_eq(bt_fe_op_parse("", &m), -EINVAL);
    for (uint32_t op = 1; op < BT_FE_OP_MAX; op++) {
        cr_assert_str_neq(bt_fe_op_name(op), "unknown", "op %u has no name", op);
        if (op != BT_FE_DIRTY) {
            cr_assert_eq(bt_fe_op_parse(bt_fe_op_name(op), &m), 0);
            cr_assert_eq(m, BT_FE_OPBIT(op));
        }
    }
    cr_assert_str_eq(bt_fe_op_name(0), "unknown");
    cr_assert_str_eq(bt_fe_op_name(999), "unknown");
}
