#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "util/rfc3339.h"

static int64_t parse_ok(const char *s)
{
    int64_t ns = 0;
    int rc = bt_rfc3339_parse(s, strlen(s), &ns);
    cr_assert_eq(rc, 0, "%s rejected", s);
    return ns;
}

static void parse_bad(const char *s)
{
    int64_t ns = 42;
    cr_assert_eq(bt_rfc3339_parse(s, strlen(s), &ns), -EINVAL, "%s accepted", s);
    cr_assert_eq(ns, 42);
}

Test(rfc3339, parses_docker_times_with_any_fraction_length)
{
    cr_assert_eq(parse_ok("2026-11-29T06:15:22.79211261Z"), 1795932922792112610LL);
    cr_assert_eq(parse_ok("2019-04-30T02:12:41.8443515Z"), 1556590361844351500LL);
    cr_assert_eq(parse_ok("2019-04-30T02:12:41Z"), 1556590361000000000LL);
    cr_assert_eq(parse_ok("2019-04-30T02:12:41.8Z"), 1556590361800000000LL);
    /* digits past nanoseconds are dropped, not rounded */
    cr_assert_eq(parse_ok("2019-04-30T02:12:41.1234567899999Z"), 1556590361123456789LL);
}

Test(rfc3339, applies_numeric_offsets)
{
    cr_assert_eq(parse_ok("2024-02-29T23:59:59+05:30"), 1709231399LL * 1000000000LL);
    cr_assert_eq(parse_ok("2019-04-30T04:12:41.5+02:00"), 1556590361500000000LL);
    cr_assert_eq(parse_ok("2019-04-29T21:12:41-05:00"), 1556590361000000000LL);
    cr_assert_eq(parse_ok("1969-12-31T23:59:59Z"), -1000000000LL);
    cr_assert_eq(parse_ok("1970-01-01T00:00:00Z"), 0);
}

Test(rfc3339, rejects_malformed_and_out_of_range)
{
    parse_bad("");
    parse_bad("2019-04-30 02:12:41Z");
    parse_bad("2019-04-30T02:12:41");
    parse_bad("2019-04-30T02:12:41.Z");
    parse_bad("2019-04-30T02:12:41z");
    parse_bad("2019-13-30T02:12:41Z");
    parse_bad("2019-02-29T02:12:41Z");
    parse_bad("2019-04-31T02:12:41Z");
    parse_bad("2019-04-30T24:00:00Z");
    parse_bad("2019-04-30T23:60:00Z");
    parse_bad("2019-04-30T23:59:60Z");
    parse_bad("2019-04-30T02:12:41+0200");
    parse_bad("2019-04-30T02:12:41+02:00x");
    parse_bad("2019-04-30T02:12:41ZZ");
    parse_bad("20x9-04-30T02:12:41Z");
    parse_bad("9999-12-31T23:59:59Z"); /* beyond int64 nanoseconds */
}

Test(rfc3339, format_round_trips_with_trimmed_zeros)
{
    char out[40];
    bt_rfc3339_format(1795932922792112610LL, out, sizeof(out));
    cr_assert_str_eq(out, "2026-11-29T06:15:22.79211261Z");
    bt_rfc3339_format(1556590361000000000LL, out, sizeof(out));
    cr_assert_str_eq(out, "2019-04-30T02:12:41Z");
    bt_rfc3339_format(-1000000000LL + 5, out, sizeof(out));
    cr_assert_str_eq(out, "1969-12-31T23:59:59.000000005Z");
    cr_assert_eq(parse_ok(out), -999999995LL);
}
