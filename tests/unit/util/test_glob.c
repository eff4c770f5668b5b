#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tmpdir.h"
#include "util/glob.h"

Test(glob, star_and_question_stay_within_one_segment)
{
    cr_assert(bt_glob_match("/var/log/*.log", "/var/log/syslog.log"));
    cr_assert(bt_glob_match("/var/log/*.log", "/var/log/.log"));
    cr_assert_not(bt_glob_match("/var/log/*.log", "/var/log/sub/x.log"));
    cr_assert_not(bt_glob_match("/var/log/*.log", "/var/log/x.log.1"));
    cr_assert(bt_glob_match("/var/log/?.log", "/var/log/a.log"));
    cr_assert_not(bt_glob_match("/var/log/?.log", "/var/log/ab.log"));
    cr_assert_not(bt_glob_match("/a?b", "/a/b"));
    cr_assert(bt_glob_match("/var/log/*log", "/var/log/syslog"));
    cr_assert(bt_glob_match("/x/*/y/*", "/x/abc/y/z"));
}

Test(glob, classes_ranges_and_negation)
{
    cr_assert(bt_glob_match("/l/[abc].log", "/l/b.log"));
    cr_assert_not(bt_glob_match("/l/[abc].log", "/l/d.log"));
    cr_assert(bt_glob_match("/l/app[0-9].log", "/l/app7.log"));
    cr_assert_not(bt_glob_match("/l/app[0-9].log", "/l/appx.log"));
    cr_assert(bt_glob_match("/l/[!a]x", "/l/bx"));
    cr_assert_not(bt_glob_match("/l/[!a]x", "/l/ax"));
    cr_assert(bt_glob_match("/l/[^a]x", "/l/cx"));
    cr_assert_not(bt_glob_match("/l[/]x", "/l/x"));
}

Test(glob, braces_choose_alternatives_and_nest)
{
    cr_assert(bt_glob_match("/l/{a,b}.log", "/l/a.log"));
    cr_assert(bt_glob_match("/l/{a,b}.log", "/l/b.log"));
    cr_assert_not(bt_glob_match("/l/{a,b}.log", "/l/c.log"));
    cr_assert(bt_glob_match("/l/*.{log,txt}", "/l/x.txt"));
    cr_assert(bt_glob_match("/l/{x{1,2},y}", "/l/x2"));
    cr_assert(bt_glob_match("/l/{x{1,2},y}", "/l/y"));
    cr_assert_not(bt_glob_match("/l/{x{1,2},y}", "/l/x3"));
    cr_assert(bt_glob_match("/{var,opt}/log/*.log", "/opt/log/a.log"));
}

Test(glob, double_star_matches_any_depth_including_zero)
{
    cr_assert(bt_glob_match("/l/**/*.log", "/l/a.log"));
    cr_assert(bt_glob_match("/l/**/*.log", "/l/x/a.log"));
    cr_assert(bt_glob_match("/l/**/*.log", "/l/x/y/z/a.log"));
    cr_assert_not(bt_glob_match("/l/**/*.log", "/m/x/a.log"));
    cr_assert(bt_glob_match("/l/**", "/l/x/y"));
    cr_assert(bt_glob_match("/l/**/app/*.log", "/l/a/b/app/c.log"));
    cr_assert_not(bt_glob_match("/l/**/app/*.log", "/l/a/b/apps/c.log"));
    /* `**` not alone in its segment is a plain star. */
    cr_assert_not(bt_glob_match("/l/a**/x", "/l/ab/c/x"));
    cr_assert(bt_glob_match("/l/a**/x", "/l/abc/x"));
}

Test(glob, escapes_make_metacharacters_literal)
{
    cr_assert(bt_glob_match("/l/a\\*b", "/l/a*b"));
    cr_assert_not(bt_glob_match("/l/a\\*b", "/l/axb"));
    cr_assert(bt_glob_has_meta("/l/*.log"));
    cr_assert_not(bt_glob_has_meta("/l/x.log"));
}

Test(glob, dir_match_says_which_directories_can_hold_matches)
{
    cr_assert(bt_glob_match_dir("/var/log/*.log", "/var/log"));
    cr_assert(bt_glob_match_dir("/var/log/*.log", "/var"));
    cr_assert(bt_glob_match_dir("/var/log/*.log", "/"));
    cr_assert_not(bt_glob_match_dir("/var/log/*.log", "/var/log/sub"));
    cr_assert_not(bt_glob_match_dir("/var/log/*.log", "/var/lib"));
    cr_assert(bt_glob_match_dir("/var/log/*/x.log", "/var/log/nginx"));
    cr_assert_not(bt_glob_match_dir("/var/log/*/x.log", "/var/log/nginx/deeper"));
    cr_assert(bt_glob_match_dir("/l/**/*.log", "/l/a/b/c"));
    cr_assert(bt_glob_match_dir("/l/**", "/l/a"));
    cr_assert(bt_glob_match_dir("/{a,b}/x/*.log", "/b/x"));
    cr_assert_not(bt_glob_match_dir("/{a,b}/x/*.log", "/c/x"));
}

Test(glob, root_is_the_static_directory_prefix)
{
    char out[256];
    cr_assert_eq(bt_glob_root("/var/log/*.log", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/var/log");
    cr_assert_eq(bt_glob_root("/var/log/a*/b/*.log", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/var/log");
    cr_assert_eq(bt_glob_root("/var/log/syslog", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/var/log");
    cr_assert_eq(bt_glob_root("/*.log", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/");
    cr_assert_eq(bt_glob_root("/var/log/**/x", out, 4), -ENAMETOOLONG);
}

struct seen {
    char files[16][512];
    int nfiles;
    char dirs[16][512];
    int ndirs;
};

static int collect(void *ctx, const char *path, bool is_dir, const struct stat *st)
{
    struct seen *s = ctx;
    (void)st;
    if (is_dir && s->ndirs < 16)
        snprintf(s->dirs[s->ndirs++], 512, "%s", path);
    else if (!is_dir && s->nfiles < 16)
        snprintf(s->files[s->nfiles++], 512, "%s", path);
    return 0;
}

static bool has(char (*v)[512], int n, const char *x)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i], x) == 0)
            return true;
    return false;
}

Test(glob, walk_finds_matches_at_any_depth_and_reports_watch_dirs)
{
    char dir[256], p[512], pat[512];
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    snprintf(p, sizeof(p), "%s/a", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/a/b", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/other", dir);
    mkdir(p, 0755);
    bt_tmpdir_write(dir, "top.log", "x", 1);
    bt_tmpdir_write(dir, "top.txt", "x", 1);
    bt_tmpdir_write(dir, "a/mid.log", "x", 1);
    bt_tmpdir_write(dir, "a/b/deep.log", "x", 1);
    snprintf(pat, sizeof(pat), "%s/**/*.log", dir);
    struct seen s = {0};
    cr_assert_eq(bt_glob_walk(pat, collect, &s), 0);
    cr_assert_eq(s.nfiles, 3);
    snprintf(p, sizeof(p), "%s/a/b/deep.log", dir);
    cr_assert(has(s.files, s.nfiles, p));
    snprintf(p, sizeof(p), "%s/top.log", dir);
    cr_assert(has(s.files, s.nfiles, p));
    cr_assert(has(s.dirs, s.ndirs, dir));
    snprintf(p, sizeof(p), "%s/a/b", dir);
    cr_assert(has(s.dirs, s.ndirs, p));

    /* A single-level pattern neither reports nor descends into subdirectories. */
    struct seen s2 = {0};
    snprintf(pat, sizeof(pat), "%s/*.log", dir);
    cr_assert_eq(bt_glob_walk(pat, collect, &s2), 0);
    cr_assert_eq(s2.nfiles, 1);
    cr_assert_eq(s2.ndirs, 1);
    bt_tmpdir_remove(dir);
}

Test(glob, walk_of_missing_root_says_enoent)
{
    struct seen s = {0};
    cr_assert_eq(bt_glob_walk("/nonexistent-bt-dir/x/*.log", collect, &s), -ENOENT);
}
