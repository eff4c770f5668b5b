#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/spool.h"

/* ---- helpers ---- */

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    if (remove(path) < 0 && errno != ENOENT)
        fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
    return 0; /* remove what can be removed */
}

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/bt-spool-test-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(spool, .init = setup, .fini = teardown);

static const char *spool_dir(const char *name)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    return path;
}

/* Record i: "rec-<i>-" then a pattern derived from i, 20..99 bytes long. */
static size_t make_rec(unsigned i, char *out)
{
    int n = snprintf(out, 32, "rec-%06u-", i);
    size_t len = 20 + (i * 37) % 80;
    for (size_t k = (size_t)n; k < len; k++)
        out[k] = (char)('a' + (i + k) % 26);
    return len;
}

static uint64_t rec_bytes(unsigned i)
{
    char b[128];
    return 8 + make_rec(i, b);
}

static struct bt_spool *open_spool(struct bt_spool_group *g, const char *name, uint64_t seg,
                                   uint64_t max)
{
    char err[256] = "";
    struct bt_spool_config cfg = {.dir = spool_dir(name), .segment_bytes = seg, .max_bytes = max};
    struct bt_spool *s = bt_spool_open(g, &cfg, err, sizeof(err));
    cr_assert_not_null(s, "open: %s", err);
    return s;
}

static void append_n(struct bt_spool *s, unsigned from, unsigned n)
{
    char b[128];
    for (unsigned i = from; i < from + n; i++) {
        size_t len = make_rec(i, b);
        cr_assert_eq(bt_spool_append(s, b, len), 0, "append %u", i);
    }
}

/* Reads the next record and checks it is record i. Returns its end offset. */
static uint64_t expect_rec(struct bt_spool *s, unsigned i)
{
    const void *rec;
    size_t len;
    uint64_t start, end;
    char b[128];
    size_t want = make_rec(i, b);
    cr_assert_eq(bt_spool_read(s, &rec, &len, &start, &end), 1, "record %u missing", i);
    cr_assert_eq(len, want, "record %u: length %zu, want %zu", i, len, want);
    cr_assert(memcmp(rec, b, len) == 0, "record %u: content differs", i);
    cr_assert_eq(end - start, 8 + len);
    return end;
}

static void expect_none(struct bt_spool *s)
{
    const void *rec;
    size_t len;
    uint64_t start, end;
    cr_assert_eq(bt_spool_read(s, &rec, &len, &start, &end), 0);
}

/* The number of the record a payload holds, or -1. */
static long rec_number(const void *rec, size_t len)
{
    char b[128];
    unsigned i;
    if (len < 11 || sscanf(rec, "rec-%6u-", &i) != 1)
        return -1;
    if (make_rec(i, b) != len || memcmp(b, rec, len) != 0)
        return -1;
    return i;
}

static int count_segments(const char *name)
{
    DIR *d = opendir(spool_dir(name));
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strlen(e->d_name) == 20 && strstr(e->d_name, ".seg"))
            n++;
    closedir(d);
    return n;
}

/* Path of the segment file starting at base. */
static const char *seg_path(const char *name, uint64_t base)
{
    static char path[192];
    snprintf(path, sizeof(path), "%s/%016" PRIx64 ".seg", spool_dir(name), base);
    return path;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
    return (uint64_t)st.st_size;
}

static uint64_t saved_commit(const char *name)
{
    char path[192], line[64] = "";
    snprintf(path, sizeof(path), "%s/commit", spool_dir(name));
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(line, sizeof(line), f));
    fclose(f);
    return strtoull(line, NULL, 16);
}

/* ---- order, buffer, commit ---- */

Test(spool, reads_records_in_order_across_segments)
{
    struct bt_spool *s = open_spool(NULL, "a", 512, 0);
    uint64_t off = 0;
    for (unsigned i = 0; i < 300; i++) {
        append_n(s, i, 1);
        off += rec_bytes(i);
        if (i % 7 == 0)
            cr_assert_eq(bt_spool_flush(s), 0);
    }
    cr_assert_eq(bt_spool_end(s), off);
    cr_assert_eq(bt_spool_bytes(s), off);
    cr_assert_geq(count_segments("a"), 10);
    uint64_t prev = 0;
    for (unsigned i = 0; i < 300; i++) {
        uint64_t end = expect_rec(s, i);
        cr_assert_eq(end, prev + rec_bytes(i), "offsets are continuous across segments");
        prev = end;
    }
    expect_none(s);
    cr_assert_eq(bt_spool_read_offset(s), off);
    cr_assert_eq(bt_spool_corrupt(s), 0);
    cr_assert_not(bt_spool_empty(s));
    bt_spool_close(s);
}

Test(spool, serves_unflushed_records_from_the_buffer)
{
    struct bt_spool *s = open_spool(NULL, "a", 0, 0);
    append_n(s, 0, 5);
    uint64_t end = bt_spool_end(s);
    cr_assert_eq(file_size(seg_path("a", 0)), 0, "nothing written before a flush");
    for (unsigned i = 0; i < 3; i++)
        expect_rec(s, i);
    cr_assert_eq(bt_spool_flush(s), 0);
    cr_assert_eq(file_size(seg_path("a", 0)), end);
    expect_rec(s, 3);
    expect_rec(s, 4);
    append_n(s, 5, 1);
    expect_rec(s, 5);
    expect_none(s);
    bt_spool_close(s);
}

Test(spool, flushes_by_itself_past_the_buffer_size)
{
    struct bt_spool *s = open_spool(NULL, "a", 64 << 20, 0);
    unsigned n = 0;
    while (bt_spool_end(s) < (600u << 10))
        append_n(s, n++, 1);
    cr_assert_geq(file_size(seg_path("a", 0)), 256u << 10);
    for (unsigned i = 0; i < n; i++)
        expect_rec(s, i);
    bt_spool_close(s);
}

Test(spool, commit_deletes_acknowledged_segments_and_persists)
{
    struct bt_spool *s = open_spool(NULL, "a", 512, 0);
    append_n(s, 0, 100);
    cr_assert_eq(bt_spool_flush(s), 0);
    int before = count_segments("a");
    uint64_t c = 0;
    for (unsigned i = 0; i < 60; i++)
        c = expect_rec(s, i);
    bt_spool_commit(s, c);
    cr_assert_eq(bt_spool_committed(s), c);
    cr_assert_lt(count_segments("a"), before);
    cr_assert_gt(bt_spool_start(s), 0);
    cr_assert_leq(bt_spool_start(s), c);
    cr_assert(access(seg_path("a", 0), F_OK) < 0, "the first segment is deleted");
    cr_assert_neq(saved_commit("a"), c, "saved at most once a second");
    cr_assert_eq(bt_spool_sync(s), 0);
    cr_assert_eq(saved_commit("a"), c);
    bt_spool_commit(s, c - 1); /* below the commit: ignored */
    cr_assert_eq(bt_spool_committed(s), c);
    bt_spool_close(s);

    s = open_spool(NULL, "a", 512, 0);
    cr_assert_eq(bt_spool_committed(s), c);
    cr_assert_eq(bt_spool_read_offset(s), c);
    for (unsigned i = 60; i < 100; i++)
        c = expect_rec(s, i);
    expect_none(s);
    bt_spool_commit(s, c);
    cr_assert(bt_spool_empty(s));
    bt_spool_close(s); /* close saves the commit */
    cr_assert_eq(saved_commit("a"), c);

    s = open_spool(NULL, "a", 512, 0);
    cr_assert(bt_spool_empty(s));
    expect_none(s);
    cr_assert_eq(count_segments("a"), 0, "a wholly acknowledged segment is deleted at open");
    append_n(s, 100, 1);
    cr_assert_eq(expect_rec(s, 100), c + rec_bytes(100), "offsets go on after the commit");
    bt_spool_close(s);
}

Test(spool, rewind_reads_again_from_the_commit)
{
    struct bt_spool *s = open_spool(NULL, "a", 256, 0);
    append_n(s, 0, 20);
    uint64_t c = 0;
    for (unsigned i = 0; i < 15; i++) {
        uint64_t e = expect_rec(s, i);
        if (i == 4)
            c = e;
    }
    bt_spool_commit(s, c);
    bt_spool_rewind(s);
    cr_assert_eq(bt_spool_read_offset(s), c);
    for (unsigned i = 5; i < 20; i++)
        expect_rec(s, i);
    expect_none(s);
    bt_spool_close(s);
}

Test(spool, missing_or_corrupt_commit_file_reads_from_the_first_segment)
{
    struct bt_spool *s = open_spool(NULL, "a", 256, 0);
    append_n(s, 0, 20);
    uint64_t c = 0;
    for (unsigned i = 0; i < 3; i++)
        c = expect_rec(s, i);
    bt_spool_commit(s, c);
    bt_spool_close(s);
    char path[192];
    snprintf(path, sizeof(path), "%s/commit", spool_dir("a"));
    FILE *f = fopen(path, "w");
    fputs("000000000000zzzz 12345678\n", f);
    fclose(f);
    s = open_spool(NULL, "a", 256, 0);
    cr_assert_eq(bt_spool_read_offset(s), 0);
    for (unsigned i = 0; i < 20; i++)
        expect_rec(s, i);
    bt_spool_close(s);
    cr_assert_eq(unlink(path), 0);
    s = open_spool(NULL, "a", 256, 0);
    expect_rec(s, 0);
    bt_spool_close(s);
}

/* ---- crashes ---- */

static void write_at_end(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
    close(fd);
}

Test(spool, torn_last_record_is_cut_and_counted)
{
    struct bt_spool *s = open_spool(NULL, "a", 0, 0);
    append_n(s, 0, 10);
    uint64_t end = bt_spool_end(s);
    bt_spool_close(s);
    /* The middle of the last record's payload. */
    cr_assert_eq(truncate(seg_path("a", 0), (off_t)(end - rec_bytes(9) / 2)), 0);
    s = open_spool(NULL, "a", 0, 0);
    cr_assert_eq(bt_spool_corrupt(s), 1);
    cr_assert_eq(bt_spool_end(s), end - rec_bytes(9));
    for (unsigned i = 0; i < 9; i++)
        expect_rec(s, i);
    expect_none(s);
    append_n(s, 9, 1);
    expect_rec(s, 9);
    bt_spool_close(s);
    cr_assert_eq(file_size(seg_path("a", 0)), end - rec_bytes(9), "the file is truncated");
    s = open_spool(NULL, "a", 0, 0);
    cr_assert_eq(bt_spool_corrupt(s), 0, "counted once");
    for (unsigned i = 0; i < 10; i++)
        expect_rec(s, i);
    bt_spool_close(s);

    /* A torn header: 3 bytes of a length. */
    write_at_end(seg_path("a", end - rec_bytes(9)), "\x10\x00\x00", 3);
    s = open_spool(NULL, "a", 0, 0);
    cr_assert_eq(bt_spool_corrupt(s), 1);
    for (unsigned i = 0; i < 10; i++)
        expect_rec(s, i);
    expect_none(s);
    bt_spool_close(s);
}

Test(spool, garbage_after_the_last_record_is_cut)
{
    struct bt_spool *s = open_spool(NULL, "a", 0, 0);
    append_n(s, 0, 10);
    uint64_t end = bt_spool_end(s);
    bt_spool_close(s);
    /* A header with a plausible length and a wrong checksum, then random bytes. */
    unsigned char junk[300] = {20, 0, 0, 0, 1, 2, 3, 4};
    srand(7);
    for (size_t k = 8; k < sizeof(junk); k++)
        junk[k] = (unsigned char)rand();
    write_at_end(seg_path("a", 0), junk, sizeof(junk));
    s = open_spool(NULL, "a", 0, 0);
    cr_assert_eq(bt_spool_corrupt(s), 1);
    cr_assert_eq(bt_spool_end(s), end);
    for (unsigned i = 0; i < 10; i++)
        expect_rec(s, i);
    expect_none(s);
    bt_spool_close(s);

    /* A length past the end of the file. */
    write_at_end(seg_path("a", 0), "\xff\xff\xff\x7f\0\0\0\0abc", 11);
    s = open_spool(NULL, "a", 0, 0);
    cr_assert_eq(bt_spool_corrupt(s), 1);
    cr_assert_eq(bt_spool_end(s), end);
    for (unsigned i = 0; i < 10; i++)
        expect_rec(s, i);
    bt_spool_close(s);
}

Test(spool, corrupt_middle_segment_skips_to_the_next)
{
    struct bt_spool *s = open_spool(NULL, "a", 512, 0);
    append_n(s, 0, 100);
    bt_spool_close(s);
    /* Find the second segment and the records in it. */
    uint64_t off = 0, second = 0;
    unsigned first_in_second = 0, first_in_third = 0;
    for (unsigned i = 0; i < 100; i++) {
        if (!second && access(seg_path("a", off), F_OK) == 0 && off > 0)
            second = off, first_in_second = i;
        else if (second && !first_in_third && access(seg_path("a", off), F_OK) == 0)
            first_in_third = i;
        off += rec_bytes(i);
    }
    cr_assert_gt(first_in_third, first_in_second + 2);
    /* Flip a payload byte of its second record. */
    int fd = open(seg_path("a", second), O_RDWR);
    cr_assert_geq(fd, 0);
    off_t at = (off_t)(rec_bytes(first_in_second) + 8 + 3);
    char c;
    cr_assert_eq(pread(fd, &c, 1, at), 1);
    c ^= 0x55;
    cr_assert_eq(pwrite(fd, &c, 1, at), 1);
    close(fd);
    s = open_spool(NULL, "a", 512, 0);
    cr_assert_eq(bt_spool_corrupt(s), 1);
    for (unsigned i = 0; i <= first_in_second; i++)
        expect_rec(s, i);
    for (unsigned i = first_in_third; i < 100; i++)
        expect_rec(s, i);
    expect_none(s);
    bt_spool_close(s);
}

Test(spool, killed_while_appending_keeps_a_valid_prefix)
{
    const char *dir = spool_dir("k");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char err[256], b[128];
        struct bt_spool_config cfg = {.dir = dir, .segment_bytes = 1 << 20};
        struct bt_spool *s = bt_spool_open(NULL, &cfg, err, sizeof(err));
        if (!s)
            _exit(2);
        for (unsigned i = 0;; i++) {
            size_t len = make_rec(i, b);
            if (bt_spool_append(s, b, len) < 0)
                _exit(3);
            if (i % 13 == 0 && bt_spool_flush(s) < 0)
                _exit(4);
        }
    }
    /* Let it write a few megabytes, then kill it wherever it is. */
    struct timespec ts = {0, 150 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status), "the child died of the signal, not by itself (%d)", status);

    struct bt_spool *s = open_spool(NULL, "k", 1 << 20, 0);
    const void *rec;
    size_t len;
    uint64_t start, end, expect_off = 0;
    long n = 0;
    while (bt_spool_read(s, &rec, &len, &start, &end) == 1) {
        cr_assert_eq(rec_number(rec, len), n, "record %ld is intact and in order", n);
        cr_assert_eq(start, expect_off);
        expect_off = end;
        n++;
    }
    cr_assert_gt(n, 1000, "the child wrote records (%ld)", n);
    cr_assert_leq(bt_spool_corrupt(s), 1);
    cr_assert_eq(bt_spool_end(s), expect_off);
    /* Appending goes on after the prefix. */
    append_n(s, (unsigned)n, 1);
    expect_rec(s, (unsigned)n);
    bt_spool_close(s);
}

/* ---- bounds ---- */

#define FIXED 64 /* payload of the bound tests: records of 72 bytes */

static void append_fixed(struct bt_spool *s, unsigned i)
{
    char b[FIXED];
    memset(b, 'x', sizeof(b));
    snprintf(b, sizeof(b), "%08u", i);
    cr_assert_eq(bt_spool_append(s, b, sizeof(b)), 0, "append %u", i);
}

static long read_fixed(struct bt_spool *s, uint64_t *end)
{
    const void *rec;
    size_t len;
    uint64_t start;
    if (bt_spool_read(s, &rec, &len, &start, end) != 1)
        return -1;
    cr_assert_eq(len, FIXED);
    return strtol(rec, NULL, 10);
}

Test(spool, group_bound_deletes_the_oldest_segments_and_counts_drops)
{
    /* 4 records per segment (288 bytes), at most 2880 bytes: 40 records over both spools. */
    struct bt_spool_group *g = bt_spool_group_new(2880);
    struct bt_spool *a = open_spool(g, "a", 288, 0);
    struct bt_spool *b = open_spool(g, "b", 288, 0);
    for (unsigned i = 0; i < 10; i++)
        append_fixed(a, i);
    /* The reader of a takes 6 and acknowledges 3. */
    uint64_t end, c3 = 0;
    for (unsigned i = 0; i < 6; i++) {
        cr_assert_eq(read_fixed(a, &end), i);
        if (i == 2)
            c3 = end;
    }
    bt_spool_commit(a, c3);
    cr_assert_eq(bt_spool_group_bytes(g), 720);
    for (unsigned i = 0; i < 50; i++) {
        append_fixed(b, i);
        cr_assert_leq(bt_spool_group_bytes(g), 2880);
    }
    cr_assert_eq(bt_spool_group_bytes(g), bt_spool_bytes(a) + bt_spool_bytes(b));
    /* a's segments were the oldest: all three went (records 0-3, 4-7, 8-9; 3 were acked). */
    cr_assert_eq(bt_spool_dropped(a), 7);
    cr_assert_eq(bt_spool_dropped_bytes(a), 7 * 72);
    cr_assert_eq(bt_spool_bytes(a), 0);
    cr_assert_eq(count_segments("a"), 0);
    expect_none(a);
    cr_assert_eq(bt_spool_read_offset(a), 720, "the reader jumped past the dropped data");
    /* b lost its oldest whole segments: what is left is a suffix, counted exactly. */
    long first = read_fixed(b, &end);
    cr_assert_gt(first, 0);
    cr_assert_eq(first % 4, 0, "whole segments go");
    cr_assert_eq(bt_spool_dropped(b), (uint64_t)first);
    for (long i = first + 1; i < 50; i++)
        cr_assert_eq(read_fixed(b, &end), i);
    expect_none(b);
    cr_assert_eq(first, 12);
    cr_assert_eq(bt_spool_dropped(a) + bt_spool_dropped(b), 10 + 50 - 3 - (50 - first));
    /* An acknowledgement of dropped records changes nothing. */
    bt_spool_commit(a, c3 + 72);
    cr_assert_eq(bt_spool_committed(a), 720);
    /* a goes on appending after what it lost. */
    append_fixed(a, 10);
    cr_assert_eq(read_fixed(a, &end), 10);
    cr_assert_eq(end, 720 + 72);
    bt_spool_close(a);
    bt_spool_close(b);
    bt_spool_group_free(g);
}

Test(spool, group_bound_drops_from_the_reader_segment_and_it_jumps)
{
    struct bt_spool_group *g = bt_spool_group_new(1440);
    struct bt_spool *a = open_spool(g, "a", 288, 0);
    struct bt_spool *b = open_spool(g, "b", 288, 0);
    for (unsigned i = 0; i < 8; i++)
        append_fixed(a, i);
    uint64_t end;
    cr_assert_eq(read_fixed(a, &end), 0);
    cr_assert_eq(read_fixed(a, &end), 1); /* the cursor is inside a's first segment */
    for (unsigned i = 0; i < 13; i++)
        append_fixed(b, i); /* the 21st record passes 1440 bytes: a's first segment goes */
    cr_assert_leq(bt_spool_group_bytes(g), 1440);
    cr_assert_eq(bt_spool_dropped(a), 4);
    cr_assert_eq(bt_spool_dropped(b), 0);
    cr_assert_eq(read_fixed(a, &end), 4, "the reader jumped to the next segment");
    bt_spool_close(a);
    bt_spool_close(b);
    bt_spool_group_free(g);
}

Test(spool, own_bound_drops_within_the_spool)
{
    struct bt_spool *s = open_spool(NULL, "a", 288, 1440);
    for (unsigned i = 0; i < 100; i++) {
        append_fixed(s, i);
        cr_assert_leq(bt_spool_bytes(s), 1440);
    }
    uint64_t end;
    long first = read_fixed(s, &end);
    /* Drops at records 20, 24, ..., 96: twenty segments of four. */
    cr_assert_eq(first, 80);
    cr_assert_eq(bt_spool_dropped(s), (uint64_t)first);
    cr_assert_eq(bt_spool_dropped_bytes(s), (uint64_t)first * 72);
    cr_assert_eq(bt_spool_start(s), (uint64_t)first * 72);
    for (long i = first + 1; i < 100; i++)
        cr_assert_eq(read_fixed(s, &end), i);
    bt_spool_close(s);
}

Test(spool, record_larger_than_a_limit_is_refused)
{
    static char big[4096];
    struct bt_spool *s = open_spool(NULL, "a", 128, 1000);
    cr_assert_eq(bt_spool_append(s, big, 993), -EFBIG);
    cr_assert_eq(bt_spool_append(s, big, 992), 0, "exactly the limit fits");
    cr_assert_eq(bt_spool_append(s, big, 10), 0);
    cr_assert_eq(bt_spool_dropped(s), 1);
    bt_spool_close(s);

    struct bt_spool_group *g = bt_spool_group_new(2000);
    s = open_spool(g, "b", 128, 0);
    cr_assert_eq(bt_spool_append(s, big, 2000), -EFBIG);
    append_n(s, 0, 1);
    /* Larger than a segment but within the limit: a segment of its own. */
    cr_assert_eq(bt_spool_append(s, big, 300), 0);
    append_n(s, 1, 1);
    cr_assert_eq(count_segments("b"), 3);
    expect_rec(s, 0);
    const void *rec;
    size_t len;
    uint64_t start, end;
    cr_assert_eq(bt_spool_read(s, &rec, &len, &start, &end), 1);
    cr_assert_eq(len, 300);
    expect_rec(s, 1);
    bt_spool_close(s);
    bt_spool_group_free(g);
}

Test(spool, destroy_removes_the_directory)
{
    struct bt_spool *s = open_spool(NULL, "a", 256, 0);
    append_n(s, 0, 50);
    uint64_t end = 0;
    for (unsigned i = 0; i < 50; i++)
        end = expect_rec(s, i);
    bt_spool_commit(s, end);
    cr_assert(bt_spool_empty(s));
    bt_spool_destroy(s);
    cr_assert(access(spool_dir("a"), F_OK) < 0 && errno == ENOENT);
}

Test(spool, open_fails_with_a_message_on_a_bad_directory)
{
    char err[256] = "", path[128];
    snprintf(path, sizeof(path), "%s/file", tmpdir);
    FILE *f = fopen(path, "w");
    fclose(f);
    struct bt_spool_config cfg = {.dir = path};
    cr_assert_null(bt_spool_open(NULL, &cfg, err, sizeof(err)));
    cr_assert(strstr(err, path) != NULL, "%s", err);
    cr_assert_eq(errno, ENOTDIR);
    struct bt_spool_config none = {.dir = ""};
    cr_assert_null(bt_spool_open(NULL, &none, err, sizeof(err)));
    cr_assert_eq(errno, EINVAL);
}

Test(spool, large_records_are_read_back_from_the_buffer_and_the_files)
{
    size_t sizes[] = {1 << 20, 10, 200 << 10, 70 << 10, 0, 3};
    size_t n = sizeof(sizes) / sizeof(sizes[0]);
    unsigned char *big = malloc(1 << 20);
    for (size_t k = 0; k < (1 << 20); k++)
        big[k] = (unsigned char)(k * 7 + k / 251);
    struct bt_spool *s = open_spool(NULL, "a", 0, 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(bt_spool_append(s, big + i, sizes[i]), 0);
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < n; i++) {
            const void *rec;
            size_t len;
            uint64_t start, end;
            cr_assert_eq(bt_spool_read(s, &rec, &len, &start, &end), 1);
            cr_assert_eq(len, sizes[i]);
            cr_assert(len == 0 || memcmp(rec, big + i, len) == 0, "record %zu differs", i);
        }
        expect_none(s);
        bt_spool_close(s);
        s = open_spool(NULL, "a", 0, 0); /* the second round reads the files */
    }
    cr_assert_eq(bt_spool_corrupt(s), 0);
    bt_spool_close(s);
    free(big);
}

Test(spool, commit_is_saved_once_the_interval_has_passed)
{
    struct bt_spool *s = open_spool(NULL, "a", 0, 0);
    append_n(s, 0, 3);
    uint64_t c1 = expect_rec(s, 0);
    bt_spool_commit(s, c1);
    cr_assert_eq(saved_commit("a"), 0);
    struct timespec ts = {1, 100 * 1000 * 1000};
    nanosleep(&ts, NULL);
    uint64_t c2 = expect_rec(s, 1);
    bt_spool_commit(s, c2);
    cr_assert_eq(saved_commit("a"), c2);
    bt_spool_close(s);
}

Test(spool, reader_keeps_up_with_appends_across_flushes_and_segments)
{
    struct bt_spool *s = open_spool(NULL, "a", 700, 0);
    unsigned next_read = 0;
    for (unsigned i = 0; i < 600; i++) {
        append_n(s, i, 1);
        if (i % 5 == 0)
            cr_assert_eq(bt_spool_flush(s), 0);
        if (i % 3 == 0)
            while (next_read <= i)
                expect_rec(s, next_read++);
    }
    while (next_read < 600)
        expect_rec(s, next_read++);
    expect_none(s);
    bt_spool_close(s);
}

Test(spool, group_counts_the_segments_found_at_open)
{
    struct bt_spool_group *g = bt_spool_group_new(0);
    struct bt_spool *a = open_spool(g, "a", 512, 0);
    struct bt_spool *b = open_spool(g, "b", 512, 0);
    append_n(a, 0, 30);
    append_n(b, 0, 50);
    uint64_t total = bt_spool_group_bytes(g);
    cr_assert_eq(total, bt_spool_end(a) + bt_spool_end(b));
    bt_spool_close(a);
    bt_spool_close(b);
    cr_assert_eq(bt_spool_group_bytes(g), 0);
    bt_spool_group_free(g);

    /* Reopened in a group too small for them: the next append makes room, oldest first. */
    g = bt_spool_group_new(total - 100);
    a = open_spool(g, "a", 512, 0);
    b = open_spool(g, "b", 512, 0);
    cr_assert_eq(bt_spool_group_bytes(g), total);
    append_n(b, 50, 1);
    cr_assert_leq(bt_spool_group_bytes(g), total - 100);
    cr_assert_gt(bt_spool_dropped(a), 0, "a's segments were written first");
    cr_assert_eq(bt_spool_dropped(b), 0);
    for (unsigned i = 0; i < 51; i++)
        expect_rec(b, i);
    bt_spool_close(a);
    bt_spool_close(b);
    bt_spool_group_free(g);
}

Test(spool, failed_write_keeps_the_records_buffered_and_the_file_whole)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* A file size limit makes write(2) stop part way, as a full disk would. */
        char err[256], b[128];
        struct bt_spool_config cfg = {.dir = spool_dir("f")};
        struct bt_spool *s = bt_spool_open(NULL, &cfg, err, sizeof(err));
        struct rlimit rl = {1000, 1000};
        signal(SIGXFSZ, SIG_IGN);
        if (!s || setrlimit(RLIMIT_FSIZE, &rl) < 0)
            _exit(2);
        unsigned i = 0;
        while (bt_spool_end(s) < 600)
            bt_spool_append(s, b, make_rec(i++, b));
        if (bt_spool_flush(s) != 0)
            _exit(3);
        uint64_t flushed = bt_spool_end(s);
        while (bt_spool_end(s) < 1500)
            bt_spool_append(s, b, make_rec(i++, b));
        if (bt_spool_flush(s) != -EFBIG)
            _exit(4);
        struct stat st;
        if (stat(seg_path("f", 0), &st) < 0 || (uint64_t)st.st_size != flushed)
            _exit(5); /* the part written is cut back: no half record in the file */
        for (unsigned k = 0; k < i; k++) {
            const void *rec;
            size_t len;
            uint64_t start, end;
            if (bt_spool_read(s, &rec, &len, &start, &end) != 1 || rec_number(rec, len) != k)
                _exit(6); /* still readable from the buffer */
        }
        _exit(0);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    struct bt_spool *s = open_spool(NULL, "f", 0, 0);
    cr_assert_eq(bt_spool_corrupt(s), 0);
    const void *rec;
    size_t len;
    uint64_t start, end;
    long n = 0;
    while (bt_spool_read(s, &rec, &len, &start, &end) == 1)
        cr_assert_eq(rec_number(rec, len), n++);
    cr_assert_gt(n, 5);
    bt_spool_close(s);
}
