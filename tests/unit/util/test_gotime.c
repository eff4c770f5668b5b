#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tmpdir.h"
#include "util/gotime.h"

#define S (1000000000LL)
/* 2026-06-15T12:00:00Z, a "now" in the middle of a year */
#define NOW_JUNE (1781524800LL * S)

static int64_t parse_ok(const char *fmt, const struct bt_tz *loc, const char *v, int64_t now)
{
    int64_t ns = 0;
    int rc = bt_gotime_parse_once(fmt, loc, v, now, &ns);
    cr_assert_eq(rc, 0, "format %s value %s: rc %d", fmt, v, rc);
    return ns;
}

static int parse_rc(const char *fmt, const struct bt_tz *loc, const char *v)
{
    int64_t ns = 0;
    return bt_gotime_parse_once(fmt, loc, v, NOW_JUNE, &ns);
}

/* A TZif v2 image with no transitions, only a zone type and the POSIX footer. */
static size_t make_tzif(unsigned char *out, const char *abbr, int32_t off, const char *footer)
{
    size_t n = 0, alen = strlen(abbr) + 1;
    for (int pass = 0; pass < 2; pass++) {
        memcpy(out + n, "TZif2", 5);
        memset(out + n + 5, 0, 15);
        n += 20;
        uint32_t counts[6] = {0, 0, 0, 0, 1, (uint32_t)alen};
        for (int i = 0; i < 6; i++, n += 4) {
            out[n] = (unsigned char)(counts[i] >> 24);
            out[n + 1] = (unsigned char)(counts[i] >> 16);
            out[n + 2] = (unsigned char)(counts[i] >> 8);
            out[n + 3] = (unsigned char)counts[i];
        }
        uint32_t uoff = (uint32_t)off;
        out[n++] = (unsigned char)(uoff >> 24);
        out[n++] = (unsigned char)(uoff >> 16);
        out[n++] = (unsigned char)(uoff >> 8);
        out[n++] = (unsigned char)uoff;
        out[n++] = 0;
        out[n++] = 0;
        memcpy(out + n, abbr, alen);
        n += alen;
    }
    out[n++] = '\n';
    memcpy(out + n, footer, strlen(footer));
    n += strlen(footer);
    out[n++] = '\n';
    return n;
}

Test(gotime, rfc3339_docker_time_with_seven_fraction_digits)
{
    int64_t ns = parse_ok("RFC3339Nano", NULL, "2019-04-30T02:12:41.8443515Z", 0);
    cr_assert_eq(ns, 1556590361LL * S + 844351500);
    /* RFC3339 (no fraction in the layout) still accepts one, like Go */
    cr_assert_eq(parse_ok("RFC3339", NULL, "2019-04-30T02:12:41.8443515Z", 0), ns);
    cr_assert_eq(parse_ok("RFC3339", NULL, "2019-04-30T02:12:41Z", 0), 1556590361LL * S);
}

Test(gotime, rfc3339_offsets_and_reference_time)
{
    cr_assert_eq(parse_ok("RFC3339", NULL, "2006-01-02T15:04:05-07:00", 0), 1136239445LL * S);
    cr_assert_eq(parse_ok("RFC3339Nano", NULL, "2006-01-02T15:04:05.999999999-07:00", 0),
                 1136239445LL * S + 999999999);
    cr_assert_eq(parse_ok("2006-01-02T15:04:05.000Z07:00", NULL, "2006-01-02T22:04:05.120Z", 0),
                 1136239445LL * S + 120000000);
}

Test(gotime, fraction_digits_past_nine_are_ignored_and_comma_accepted)
{
    cr_assert_eq(parse_ok("RFC3339", NULL, "2019-04-30T02:12:41.123456789999Z", 0),
                 1556590361LL * S + 123456789);
    cr_assert_eq(parse_ok("2006-01-02 15:04:05,000", NULL, "2019-04-30 02:12:41,250", 0),
                 1556590361LL * S + 250000000);
    /* .000 requires exactly that many digits */
    cr_assert_eq(parse_rc("2006-01-02 15:04:05.000", NULL, "2019-04-30 02:12:41.25"), -EINVAL);
    /* .999 makes the fraction optional */
    cr_assert_eq(parse_ok("2006-01-02 15:04:05.999", NULL, "2019-04-30 02:12:41", 0),
                 1556590361LL * S);
}

Test(gotime, named_go_layouts)
{
    int64_t ref = 1136239445LL * S;
    cr_assert_eq(parse_ok("ANSIC", NULL, "Mon Jan  2 22:04:05 2006", 0), ref);
    cr_assert_eq(parse_ok("UnixDate", NULL, "Mon Jan  2 22:04:05 UTC 2006", 0), ref);
    cr_assert_eq(parse_ok("RubyDate", NULL, "Mon Jan 02 15:04:05 -0700 2006", 0), ref);
    cr_assert_eq(parse_ok("RFC822Z", NULL, "02 Jan 06 15:04 -0700", 0), ref - 5 * S);
    cr_assert_eq(parse_ok("RFC850", NULL, "Monday, 02-Jan-06 22:04:05 UTC", 0), ref);
    cr_assert_eq(parse_ok("RFC1123", NULL, "Mon, 02 Jan 2006 22:04:05 GMT", 0), ref);
    cr_assert_eq(parse_ok("RFC1123Z", NULL, "Mon, 02 Jan 2006 15:04:05 -0700", 0), ref);
}

Test(gotime, unix_formats_from_promtail_docs)
{
    cr_assert_eq(parse_ok("Unix", NULL, "1562708916", 0), 1562708916LL * S);
    cr_assert_eq(parse_ok("Unix", NULL, "1562708916.000000123", 0), 1562708916LL * S + 123);
    cr_assert_eq(parse_ok("Unix", NULL, "1562708916.5", 0), 1562708916LL * S + 500000000);
    cr_assert_eq(parse_ok("UnixMs", NULL, "1562708916414", 0), 1562708916414LL * 1000000);
    cr_assert_eq(parse_ok("UnixUs", NULL, "1562708916414123", 0), 1562708916414123LL * 1000);
    cr_assert_eq(parse_ok("UnixNs", NULL, "1562708916000000123", 0), 1562708916000000123LL);
    cr_assert_eq(parse_rc("Unix", NULL, "1562708916.1234567891"), -ERANGE);
    cr_assert_eq(parse_rc("Unix", NULL, "15627.089.16"), -EINVAL);
    cr_assert_eq(parse_rc("UnixMs", NULL, "12a"), -EINVAL);
    cr_assert_eq(parse_rc("UnixMs", NULL, ""), -EINVAL);
    cr_assert_eq(parse_rc("UnixMs", NULL, "99999999999999999"), -ERANGE);
}

Test(gotime, yearless_layout_uses_current_year)
{
    /* 2026-06-15 now */
    int64_t ns = parse_ok("Jan _2 15:04:05", NULL, "Mar  1 10:00:00", NOW_JUNE);
    int64_t want = 0;
    cr_assert_eq(
        bt_gotime_parse_once("2006-01-02T15:04:05Z07:00", NULL, "2026-03-01T10:00:00Z", 0, &want),
        0);
    cr_assert_eq(ns, want);
}

Test(gotime, yearless_december_in_january_is_last_year)
{
    int64_t jan1 = 1767225601LL * S; /* 2026-01-01T00:00:01Z */
    int64_t ns = parse_ok("Jan _2 15:04:05", NULL, "Dec 31 23:59:59", jan1);
    cr_assert_eq(ns, 1767225599LL * S); /* 2025-12-31T23:59:59Z */
}

Test(gotime, yearless_january_in_december_is_next_year)
{
    int64_t dec31 = 1767225599LL * S;
    int64_t ns = parse_ok("Jan _2 15:04:05", NULL, "Jan  1 00:00:01", dec31);
    cr_assert_eq(ns, 1767225601LL * S);
}

Test(gotime, yearless_feb_29_rolls_to_march_in_common_year)
{
    /* Go parses into year 0 (a leap year), then AddDate normalises into March 1 */
    int64_t ns = parse_ok("Jan 2 15:04:05", NULL, "Feb 29 10:00:00", 1709287200LL * S - 1);
    cr_assert_eq(ns, 1709287200LL * S - 86400LL * S); /* 2024 is leap: Feb 29 stays */
    int64_t in2026 = parse_ok("Jan 2 15:04:05", NULL, "Feb 29 10:00:00", NOW_JUNE);
    int64_t mar1 = 0;
    bt_gotime_parse_once("RFC3339", NULL, "2026-03-01T10:00:00Z", 0, &mar1);
    cr_assert_eq(in2026, mar1);
}

Test(gotime, twelve_hour_clock_and_case_insensitive_names)
{
    int64_t base = 0;
    bt_gotime_parse_once("RFC3339", NULL, "2022-11-08T12:53:24Z", 0, &base);
    cr_assert_eq(parse_ok("01/02/2006, 03:04:05 PM", NULL, "11/08/2022, 12:53:24 PM", 0), base);
    cr_assert_eq(parse_ok("01/02/2006, 3:04:05 pm", NULL, "11/08/2022, 12:53:24 am", 0),
                 base - 12 * 3600 * S);
    cr_assert_eq(parse_ok("02 January 2006 15:04:05", NULL, "08 NOVEMBER 2022 12:53:24", 0), base);
    cr_assert_eq(parse_ok("Monday 02 Jan 2006 15:04:05", NULL, "tuesday 08 nov 2022 12:53:24", 0),
                 base);
}

Test(gotime, spaces_in_layout_match_runs_of_spaces)
{
    int64_t a = parse_ok("2006-01-02 15:04:05", NULL, "2019-04-30    02:12:41", 0);
    cr_assert_eq(a, 1556590361LL * S);
    cr_assert_eq(parse_rc("2006-01-02 15:04:05", NULL, "2019-04-30T02:12:41"), -EINVAL);
}

Test(gotime, rejects_bad_values)
{
    cr_assert_eq(parse_rc("RFC3339", NULL, "2019-04-30T02:12:41Z trailing"), -EINVAL);
    cr_assert_eq(parse_rc("RFC3339", NULL, ""), -EINVAL);
    cr_assert_eq(parse_rc("RFC3339", NULL, "2019-13-30T02:12:41Z"), -ERANGE);
    cr_assert_eq(parse_rc("RFC3339", NULL, "2019-02-30T02:12:41Z"), -ERANGE);
    cr_assert_eq(parse_rc("RFC3339", NULL, "2019-02-10T24:12:41Z"), -ERANGE);
    cr_assert_eq(parse_rc("RFC3339", NULL, "2019-02-10T23:60:41Z"), -ERANGE);
    cr_assert_eq(parse_rc("RFC3339", NULL, "2019-02-10T23:12:41+0200"), -EINVAL);
    cr_assert_eq(parse_rc("Jan 2 2006", NULL, "Foo 2 2019"), -EINVAL);
    cr_assert_eq(parse_rc("RFC3339", NULL, "2019-04-30T02:12:41\xc3\xa9"), -EINVAL);
    /* outside int64 nanoseconds */
    cr_assert_eq(parse_rc("RFC3339", NULL, "2300-01-01T00:00:00Z"), -ERANGE);
    char err[128] = "";
    cr_assert_null(bt_gotime_new("", NULL, err, sizeof(err)));
    cr_assert(strstr(err, "empty"));
}

Test(gotime, numeric_zone_variants)
{
    int64_t ref = 1136239445LL * S;
    cr_assert_eq(parse_ok("2006-01-02 15:04:05 -07", NULL, "2006-01-02 15:04:05 -07", 0), ref);
    cr_assert_eq(parse_ok("2006-01-02 15:04:05 -070000", NULL, "2006-01-02 15:04:05 -070000", 0),
                 ref);
    cr_assert_eq(
        parse_ok("2006-01-02 15:04:05 -07:00:00", NULL, "2006-01-02 15:04:05 -07:00:00", 0), ref);
    cr_assert_eq(parse_ok("2006-01-02 15:04:05 Z0700", NULL, "2006-01-02 22:04:05 Z", 0), ref);
    cr_assert_eq(parse_ok("2006-01-02 15:04:05 Z07", NULL, "2006-01-02 15:04:05 -07", 0), ref);
}

Test(gotime, location_applies_to_zoneless_layouts_from_tzif_footer)
{
    unsigned char img[256];
    size_t n = make_tzif(img, "CET", 3600, "CET-1CEST,M3.5.0,M10.5.0/3");
    char err[128];
    struct bt_tz *tz = bt_tz_from_tzif("Test/Berlin", img, n, err, sizeof(err));
    cr_assert_not_null(tz, "%s", err);
    /* summer: +02:00, winter: +01:00 */
    cr_assert_eq(parse_ok("2006-01-02 15:04:05", tz, "2021-07-01 12:00:00", 0), 1625133600LL * S);
    cr_assert_eq(parse_ok("2006-01-02 15:04:05", tz, "2021-01-15 12:00:00", 0), 1610708400LL * S);
    /* the spring-forward gap resolves like Go's time.Date: 02:30 becomes 03:30 CEST */
    cr_assert_eq(parse_ok("2006-01-02 15:04:05", tz, "2021-03-28 02:30:00", 0), 1616895000LL * S);
    /* an explicit offset wins over the location */
    cr_assert_eq(parse_ok("2006-01-02 15:04:05 -07:00", tz, "2006-01-02 15:04:05 -07:00", 0),
                 1136239445LL * S);
    /* named Go layouts ignore the location (promtail uses time.Parse for them) */
    cr_assert_eq(parse_ok("ANSIC", tz, "Mon Jan  2 22:04:05 2006", 0), 1136239445LL * S);
    /* the zone's own abbreviation resolves to its offset */
    cr_assert_eq(parse_ok("2006-01-02 15:04:05 MST", tz, "2021-01-15 13:00:00 CET", 0),
                 (1610708400LL + 3600) * S);
    /* an unknown abbreviation counts as offset 0, as in Go */
    cr_assert_eq(parse_ok("2006-01-02 15:04:05 MST", tz, "2021-07-01 12:00:00 XYZ", 0),
                 1625140800LL * S);
    const char *abbr;
    cr_assert_eq(bt_tz_offset(tz, 1625133600LL, &abbr), 7200);
    cr_assert_str_eq(abbr, "CEST");
    cr_assert_eq(bt_tz_offset(tz, 1610708400LL, &abbr), 3600);
    cr_assert_str_eq(abbr, "CET");
    bt_tz_free(tz);
}

Test(gotime, southern_hemisphere_rule_spans_new_year)
{
    unsigned char img[256];
    size_t n = make_tzif(img, "AEST", 36000, "AEST-10AEDT,M10.1.0,M4.1.0/3");
    struct bt_tz *tz = bt_tz_from_tzif("Test/Sydney", img, n, NULL, 0);
    cr_assert_not_null(tz);
    cr_assert_eq(parse_ok("2006-01-02 15:04:05", tz, "2021-06-15 12:00:00", 0), 1623722400LL * S);
    cr_assert_eq(parse_ok("2006-01-02 15:04:05", tz, "2021-01-15 12:00:00", 0), 1610672400LL * S);
    bt_tz_free(tz);
}

Test(gotime, loads_zone_files_from_a_directory_and_rejects_bad_names)
{
    char dir[256];
    cr_assert_eq(bt_tmpdir_make(dir, sizeof(dir)), 0);
    unsigned char img[256];
    size_t n = make_tzif(img, "MST", -25200, "MST7MDT,M3.2.0,M11.1.0");
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/America", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(bt_tmpdir_write(dir, "America/Denver", (const char *)img, n), 0);
    char err[256] = "";
    struct bt_tz *tz = bt_tz_load_dir(dir, "America/Denver", err, sizeof(err));
    cr_assert_not_null(tz, "%s", err);
    cr_assert_str_eq(bt_tz_name(tz), "America/Denver");
    cr_assert_eq(parse_ok("2006-01-02 15:04:05", tz, "2021-06-15 12:00:00", 0), 1623780000LL * S);
    bt_tz_free(tz);
    cr_assert_null(bt_tz_load_dir(dir, "../etc/passwd", err, sizeof(err)));
    cr_assert(strstr(err, "invalid time zone name"), "%s", err);
    cr_assert_null(bt_tz_load_dir(dir, "Nowhere/City", err, sizeof(err)));
    cr_assert(strstr(err, "unknown time zone"), "%s", err);
    cr_assert_eq(bt_tmpdir_write(dir, "Bad", "not a tzif file at all, sorry.......", 36), 0);
    cr_assert_null(bt_tz_load_dir(dir, "Bad", err, sizeof(err)));
    cr_assert(strstr(err, "invalid time zone data"), "%s", err);
    bt_tmpdir_remove(dir);
}

Test(gotime, truncated_tzif_is_rejected_not_read_past_end)
{
    unsigned char img[256];
    size_t n = make_tzif(img, "CET", 3600, "CET-1");
    for (size_t cut = 0; cut < 60; cut++)
        cr_assert_null(bt_tz_from_tzif("x", img, cut, NULL, 0), "cut %zu", cut);
}

Test(gotime, utc_and_system_zones)
{
    struct bt_tz *utc = bt_tz_load("UTC", NULL, 0);
    cr_assert_not_null(utc);
    cr_assert_eq(bt_tz_offset(utc, 0, NULL), 0);
    bt_tz_free(utc);
    char err[256];
    struct bt_tz *ny = bt_tz_load("America/New_York", err, sizeof(err));
    if (!ny)
        cr_skip_test("system zoneinfo has no America/New_York (tzdata not installed): %s", err);
    /* 2021-06-15 12:00 EDT = 16:00Z; 2021-01-15 12:00 EST = 17:00Z */
    cr_assert_eq(parse_ok("2006-01-02 15:04:05", ny, "2021-06-15 12:00:00", 0), 1623772800LL * S);
    cr_assert_eq(parse_ok("2006-01-02 15:04:05", ny, "2021-01-15 12:00:00", 0), 1610730000LL * S);
    /* far future relies on the POSIX footer (or the file's own table) */
    cr_assert_eq(bt_tz_offset(ny, 4102444800LL + 180 * 86400, NULL), -4 * 3600);
    bt_tz_free(ny);
}

/* Mutated timestamps (outside input) must give a result or an error, never a crash; run under
 * the sanitizers in CI. Deterministic: a fixed LCG. */
Test(gotime, mutated_values_never_crash)
{
    static const char *const fmts[] = {"RFC3339Nano",
                                       "Jan _2 15:04:05",
                                       "Unix",
                                       "02/Jan/2006:15:04:05 -0700",
                                       "Mon Jan 2 3:4:5 PM MST 06",
                                       "2006-01-02T15:04:05.000Z07:00:00",
                                       "__2 002 Z07"};
    static const char *const seeds[] = {"2019-04-30T02:12:41.8443515Z", "Jan  1 00:00:01",
                                        "1562708916.000000123", "25/Jan/2000:14:00:01 -0500",
                                        "Tue Nov 8 12:53:24 PM GMT+3 22"};
    static const char alphabet[] = "0123456789-+:.,TZ JanFebMSTGMTPMpm_\xc3\xa9\xff";
    uint32_t r = 12345;
    char v[64];
    for (size_t fi = 0; fi < sizeof(fmts) / sizeof(fmts[0]); fi++) {
        struct bt_gotime *f = bt_gotime_new(fmts[fi], NULL, NULL, 0);
        cr_assert_not_null(f);
        for (int iter = 0; iter < 3000; iter++) {
            const char *seed = seeds[iter % 5];
            size_t n = strlen(seed);
            memcpy(v, seed, n);
            for (int k = 0; k < 3; k++) {
                r = r * 1103515245u + 12345u;
                size_t pos = (r >> 8) % (n + 1);
                r = r * 1103515245u + 12345u;
                if (pos < n)
                    v[pos] = alphabet[(r >> 8) % (sizeof(alphabet) - 1)];
                else if (n > 0)
                    n--; /* truncate */
            }
            int64_t ns;
            int rc = bt_gotime_parse(f, v, n, NOW_JUNE, &ns);
            cr_assert(rc == 0 || rc == -EINVAL || rc == -ERANGE);
        }
        bt_gotime_free(f);
    }
}

Test(gotime, gmt_and_signed_abbreviations_follow_go)
{
    /* Go keeps the wall clock for abbreviations it cannot resolve, GMT+3 included */
    int64_t wall = 1625140800LL * S; /* 2021-07-01T12:00:00Z */
    cr_assert_eq(parse_ok("2006-01-02 15:04:05 MST", NULL, "2021-07-01 12:00:00 GMT+3", 0), wall);
    cr_assert_eq(parse_ok("2006-01-02 15:04:05 MST", NULL, "2021-07-01 12:00:00 +03", 0), wall);
    cr_assert_eq(parse_ok("2006-01-02 15:04:05 MST", NULL, "2021-07-01 12:00:00 UTC", 0), wall);
    cr_assert_eq(parse_rc("2006-01-02 15:04:05 MST", NULL, "2021-07-01 12:00:00 +24"), -EINVAL);
    cr_assert_eq(parse_rc("2006-01-02 15:04:05 MST", NULL, "2021-07-01 12:00:00 Xy"), -EINVAL);
}

Test(gotime, only_yearless_layouts_read_the_current_time)
{
    static const struct {
        const char *fmt;
        bool uses_now;
    } cases[] = {{"RFC3339Nano", false}, {"Unix", false},
                 {"UnixMs", false},      {"2006-01-02 15:04:05", false},
                 {"Stamp", true},        {"Jan _2 15:04:05", true},
                 {"RFC3164", true}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bt_gotime *f = bt_gotime_new(cases[i].fmt, NULL, NULL, 0);
        cr_assert_not_null(f, "%s", cases[i].fmt);
        cr_expect_eq(bt_gotime_uses_now(f), cases[i].uses_now, "%s", cases[i].fmt);
        bt_gotime_free(f);
    }
}

/* The named RFC3339 formats try util/rfc3339 first. Whatever it takes, the layout parser (the
 * same layout given as text, which has no such shortcut) must take to the same instant: valid
 * stamps, and each of them with one byte changed to another character that matters. */
Test(gotime, named_rfc3339_shortcut_agrees_with_the_layout_parser)
{
    static const char *const base[] = {"2019-04-30T02:12:41.8443515Z",
                                       "2026-12-03T11:58:00Z",
                                       "1999-12-31T23:59:59.999999999+01:00",
                                       "2024-02-29T00:00:00-07:30",
                                       "1970-01-01T00:00:00.1Z",
                                       "2262-04-11T23:47:16.854775807Z",
                                       "1677-09-21T00:12:43.145224192Z",
                                       "2000-01-01T12:00:00.0000000001Z"};
    static const char alphabet[] = "0123456789-+:.,TtZz 6";
    static const char *const named[][2] = {{"RFC3339", "2006-01-02T15:04:05Z07:00"},
                                           {"RFC3339Nano", "2006-01-02T15:04:05.999999999Z07:00"}};
    struct bt_gotime *fast[2], *slow[2];
    for (int k = 0; k < 2; k++) {
        fast[k] = bt_gotime_new(named[k][0], NULL, NULL, 0);
        slow[k] = bt_gotime_new(named[k][1], NULL, NULL, 0);
        cr_assert(fast[k] && slow[k]);
    }
    size_t checked = 0, accepted = 0;
    for (size_t b = 0; b < sizeof(base) / sizeof(base[0]); b++) {
        size_t n = strlen(base[b]);
        for (size_t i = 0; i <= n; i++) {
            for (size_t a = 0; a <= sizeof(alphabet) - 1; a++) {
                char v[64];
                memcpy(v, base[b], n + 1);
                size_t len = n;
                if (i == n || a == sizeof(alphabet) - 1) {
                    if (i == n && a > 0)
                        continue;
                    if (i < n) { /* delete byte i */
                        memmove(v + i, v + i + 1, n - i);
                        len--;
                    }
                } else {
                    v[i] = alphabet[a];
                }
                for (int k = 0; k < 2; k++) {
                    int64_t x = 0, y = 0;
                    int rx = bt_gotime_parse(fast[k], v, len, NOW_JUNE, &x);
                    int ry = bt_gotime_parse(slow[k], v, len, NOW_JUNE, &y);
                    checked++;
                    if (rx == 0) {
                        accepted++;
                        cr_assert_eq(ry, 0, "%s: %s taken by the shortcut, refused by the layout",
                                     named[k][0], v);
                        cr_assert_eq(x, y, "%s: %s: %lld vs %lld", named[k][0], v, (long long)x,
                                     (long long)y);
                    }
                }
            }
        }
    }
    cr_assert_gt(accepted, 100);
    cr_assert_gt(checked, 5000);
    for (int k = 0; k < 2; k++) {
        bt_gotime_free(fast[k]);
        bt_gotime_free(slow[k]);
    }
}
