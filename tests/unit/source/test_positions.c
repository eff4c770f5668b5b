#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "source/positions.h"
#include "tmpdir.h"

static char dir[256], file[512];

static void setup(void)
{
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    snprintf(file, sizeof(file), "%s/positions.yaml", dir);
}

static void teardown(void)
{
    bt_tmpdir_remove(dir);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

TestSuite(positions, .init = setup, .fini = teardown);

Test(positions, save_then_load_round_trips_offsets_and_identity)
{
    struct bt_positions *p = bt_positions_new(file, false);
    struct bt_position a = {.offset = 81234,
                            .has_identity = true,
                            .dev = 2049,
                            .ino = 1234,
                            .fp_hash = 0xdeadbeef01234567ull,
                            .fp_len = 1024};
    struct bt_position b = {.offset = 7};
    cr_assert_eq(bt_positions_set(p, "/var/log/syslog", &a), 0);
    cr_assert_eq(bt_positions_set(p, "/var/log/we ird\"name: x", &b), 0);
    cr_assert_eq(bt_positions_save(p), 0);
    bt_positions_free(p);

    struct stat st;
    cr_assert_eq(stat(file, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    const char *text = slurp(file);
    cr_assert(strstr(text, "positions:\n") == text, "%s", text);
    cr_assert(strstr(text, "\"/var/log/syslog\": \"81234\"\n"), "%s", text);

    p = bt_positions_new(file, false);
    bool salvaged = true;
    cr_assert_eq(bt_positions_load(p, &salvaged), 0);
    cr_assert_not(salvaged);
    cr_assert_eq(bt_positions_count(p), 2);
    const struct bt_position *r = bt_positions_get(p, "/var/log/syslog");
    cr_assert_not_null(r);
    cr_assert_eq(r->offset, 81234);
    cr_assert(r->has_identity);
    cr_assert_eq(r->dev, 2049);
    cr_assert_eq(r->ino, 1234);
    cr_assert_eq(r->fp_hash, 0xdeadbeef01234567ull);
    cr_assert_eq(r->fp_len, 1024);
    r = bt_positions_get(p, "/var/log/we ird\"name: x");
    cr_assert_not_null(r);
    cr_assert_eq(r->offset, 7);
    cr_assert_not(r->has_identity);
    const struct bt_position *f = NULL;
    cr_assert_str_eq(bt_positions_find_inode(p, 2049, 1234, &f), "/var/log/syslog");
    cr_assert_eq(f->offset, 81234);
    cr_assert_null(bt_positions_find_inode(p, 2049, 999, NULL));
    bt_positions_free(p);
}

Test(positions, save_leaves_no_temp_file_and_replaces_atomically)
{
    struct bt_positions *p = bt_positions_new(file, false);
    struct bt_position a = {.offset = 1};
    bt_positions_set(p, "/a", &a);
    cr_assert_eq(bt_positions_save(p), 0);
    struct stat st1;
    stat(file, &st1);
    a.offset = 2;
    bt_positions_set(p, "/a", &a);
    cr_assert_eq(bt_positions_save(p), 0);
    struct stat st2;
    stat(file, &st2);
    /* rename() put a new inode in place rather than rewriting the old one. */
    cr_assert_neq(st1.st_ino, st2.st_ino);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", dir);
    cr_assert_eq(system(cmd), 0, "temp files left in %s", dir);
    cr_assert(strstr(slurp(file), "\"/a\": \"2\""));
    bt_positions_free(p);
}

Test(positions, reads_promtail_file_and_keeps_cursor_keys)
{
    const char *t = "positions:\n"
                    "  /var/log/syslog: \"81234\"\n"
                    "  /var/log/auth.log: \"12\"\n"
                    "  cursor-0123456789ab: \"1681234567\"\n"
                    "  cursor-journal: s=abc;i=1\n";
    bt_tmpdir_write(dir, "positions.yaml", t, strlen(t));
    struct bt_positions *p = bt_positions_new(file, false);
    bool salvaged = true;
    cr_assert_eq(bt_positions_load(p, &salvaged), 0);
    cr_assert_not(salvaged);
    cr_assert_eq(bt_positions_get(p, "/var/log/syslog")->offset, 81234);
    cr_assert_eq(bt_positions_get(p, "/var/log/auth.log")->offset, 12);
    cr_assert_not(bt_positions_get(p, "/var/log/auth.log")->has_identity);
    cr_assert_eq(bt_positions_get(p, "cursor-0123456789ab")->offset, 1681234567);
    cr_assert_eq(bt_positions_save(p), 0);
    const char *out = slurp(file);
    cr_assert(strstr(out, "\"cursor-0123456789ab\": \"1681234567\""), "%s", out);
    cr_assert(strstr(out, "\"cursor-journal\": \"s=abc;i=1\""), "%s", out);
    bt_positions_free(p);
}

Test(positions, string_records_round_trip_as_promtail_journal_cursors)
{
    const char *t = "positions:\n"
                    "  journal-system: \"s=abc;i=1\"\n";
    bt_tmpdir_write(dir, "positions.yaml", t, strlen(t));
    struct bt_positions *p = bt_positions_new(file, false);
    cr_assert_eq(bt_positions_load(p, NULL), 0);
    cr_assert_str_eq(bt_positions_get_string(p, "journal-system"), "s=abc;i=1");
    cr_assert_null(bt_positions_get(p, "journal-system"), "a cursor is not an offset");
    cr_assert_eq(bt_positions_set_string(p, "journal-system", "s=def;i=2"), 0);
    cr_assert_eq(bt_positions_set_string(p, "journal-other", "s=x;i=3"), 0);
    cr_assert_eq(bt_positions_set_string(p, "/var/log/a", "s=x"), -EINVAL);
    cr_assert_eq(bt_positions_set_string(p, "journal-empty", ""), -EINVAL);
    cr_assert_eq(bt_positions_save(p), 0);
    bt_positions_free(p);
    p = bt_positions_new(file, false);
    cr_assert_eq(bt_positions_load(p, NULL), 0);
    cr_assert_str_eq(bt_positions_get_string(p, "journal-system"), "s=def;i=2");
    cr_assert_str_eq(bt_positions_get_string(p, "journal-other"), "s=x;i=3");
    cr_assert_null(bt_positions_get_string(p, "journal-empty"));
    bt_positions_free(p);
}

Test(positions, missing_or_empty_file_means_no_records)
{
    struct bt_positions *p = bt_positions_new(file, false);
    cr_assert_eq(bt_positions_load(p, NULL), 0);
    cr_assert_eq(bt_positions_count(p), 0);
    bt_positions_free(p);
    bt_tmpdir_write(dir, "positions.yaml", "", 0);
    p = bt_positions_new(file, false);
    bool salvaged = true;
    cr_assert_eq(bt_positions_load(p, &salvaged), 0);
    cr_assert_not(salvaged);
    cr_assert_eq(bt_positions_count(p), 0);
    bt_positions_free(p);
    /* What a save with no records writes reads back cleanly. */
    p = bt_positions_new(file, false);
    cr_assert_eq(bt_positions_save(p), 0);
    bt_positions_free(p);
    p = bt_positions_new(file, false);
    cr_assert_eq(bt_positions_load(p, &salvaged), 0);
    cr_assert_not(salvaged);
    bt_positions_free(p);
}

Test(positions, truncated_file_keeps_complete_records)
{
    const char *t = "positions:\n"
                    "  \"/a.log\": \"100\"\n"
                    "  \"bpftail-id:/a.log\": \"1:2:00000000000000ff:5\"\n"
                    "  \"/b.log\": \"200\"\n"
                    "  \"/c.log\": \"3";
    bt_tmpdir_write(dir, "positions.yaml", t, strlen(t));
    struct bt_positions *p = bt_positions_new(file, false);
    bool salvaged = false;
    cr_assert_eq(bt_positions_load(p, &salvaged), 0);
    cr_assert(salvaged);
    cr_assert_eq(bt_positions_count(p), 2);
    cr_assert_eq(bt_positions_get(p, "/a.log")->offset, 100);
    cr_assert(bt_positions_get(p, "/a.log")->has_identity);
    cr_assert_eq(bt_positions_get(p, "/a.log")->fp_hash, 0xff);
    cr_assert_eq(bt_positions_get(p, "/b.log")->offset, 200);
    cr_assert_null(bt_positions_get(p, "/c.log"));
    bt_positions_free(p);
}

Test(positions, nul_filled_and_garbage_files_never_fail_the_load)
{
    char zeros[4096] = {0};
    bt_tmpdir_write(dir, "positions.yaml", zeros, sizeof(zeros));
    struct bt_positions *p = bt_positions_new(file, false);
    bool salvaged = false;
    cr_assert_eq(bt_positions_load(p, &salvaged), 0);
    cr_assert(salvaged);
    cr_assert_eq(bt_positions_count(p), 0);
    bt_positions_free(p);

    const char *g = "\x7f"
                    "ELF{{{ ]]] : : -\n  - [oops\n\tpositions\n";
    bt_tmpdir_write(dir, "positions.yaml", g, strlen(g));
    p = bt_positions_new(file, false);
    cr_assert_eq(bt_positions_load(p, &salvaged), 0);
    cr_assert(salvaged);
    cr_assert_eq(bt_positions_count(p), 0);
    bt_positions_free(p);

    /* Valid YAML, wrong shape: bad values skipped, good ones kept. */
    const char *w = "positions:\n  /x: \"12\"\n  /y: notanumber\n  /z: [1, 2]\n";
    bt_tmpdir_write(dir, "positions.yaml", w, strlen(w));
    p = bt_positions_new(file, false);
    cr_assert_eq(bt_positions_load(p, &salvaged), 0);
    cr_assert(salvaged);
    cr_assert_eq(bt_positions_count(p), 1);
    cr_assert_eq(bt_positions_get(p, "/x")->offset, 12);
    bt_positions_free(p);
}

Test(positions, readonly_store_never_writes)
{
    struct bt_positions *p = bt_positions_new(file, true);
    struct bt_position a = {.offset = 1};
    bt_positions_set(p, "/a", &a);
    cr_assert_eq(bt_positions_save(p), 0);
    struct stat st;
    cr_assert_eq(stat(file, &st), -1);
    bt_positions_free(p);
}

Test(positions, remove_forgets_a_record)
{
    struct bt_positions *p = bt_positions_new(file, false);
    struct bt_position a = {.offset = 1};
    bt_positions_set(p, "/a", &a);
    bt_positions_remove(p, "/a");
    cr_assert_null(bt_positions_get(p, "/a"));
    cr_assert_eq(bt_positions_count(p), 0);
    bt_positions_free(p);
}

/* Random damage to a valid file (bytes flipped, cut short, NULs) never crashes the reader or
 * fails the load (run under the sanitizers in CI to catch memory errors). */
Test(positions, randomly_damaged_files_load_without_crashing)
{
    const char *valid = "positions:\n"
                        "  \"/var/log/a.log\": \"100\"\n"
                        "  \"bpftail-id:/var/log/a.log\": \"1:2:00000000000000ff:5\"\n"
                        "  \"/var/log/b.log\": \"200\"\n"
                        "  cursor-x: \"7\"\n";
    size_t n = strlen(valid);
    char buf[512];
    uint32_t seed = 12345;
    for (int round = 0; round < 400; round++) {
        memcpy(buf, valid, n);
        size_t len = n;
        int edits = 1 + round % 6;
        for (int e = 0; e < edits; e++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            switch ((seed >> 4) % 4) {
            case 0: buf[at] = (char)(seed >> 16); break;
            case 1: len = at + 1; break;
            case 2: buf[at] = '\0'; break;
            default: buf[at] = ':'; break;
            }
        }
        bt_tmpdir_write(dir, "positions.yaml", buf, len);
        struct bt_positions *p = bt_positions_new(file, false);
        cr_assert_eq(bt_positions_load(p, NULL), 0);
        size_t it = 0;
        const char *path;
        const struct bt_position *pos;
        while (bt_positions_next(p, &it, &path, &pos))
            cr_assert_leq(strlen(path), n);
        bt_positions_free(p);
    }
}

Test(positions, save_into_a_missing_directory_fails_cleanly)
{
    char bad[600];
    snprintf(bad, sizeof(bad), "%s/no/such/dir/positions.yaml", dir);
    struct bt_positions *p = bt_positions_new(bad, false);
    struct bt_position a = {.offset = 1};
    bt_positions_set(p, "/a", &a);
    cr_assert_eq(bt_positions_save(p), -ENOENT);
    cr_assert_eq(bt_positions_save(p), -ENOENT);
    bt_positions_free(p);
}
