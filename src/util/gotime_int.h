/*
 * gotime_int: what the two halves of gotime (gotime.c: layouts, gotime_tz.c: zones and
 * calendar) share. Not for use outside them.
 */
#ifndef BT_UTIL_GOTIME_INT_H
#define BT_UTIL_GOTIME_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_tz;

#define GTIME_SEC_PER_DAY 86400LL

bool gtime_is_leap(int64_t y);
/* Days in month (1-12) of year. */
int gtime_days_in(int month, int64_t year);
/* Days since 1970-01-01 of y-m-d (proleptic Gregorian); d may run past the month's end. */
int64_t gtime_days_from_civil(int64_t y, int m, int64_t d);
/* The year that day number z (days since 1970-01-01) falls in. */
int64_t gtime_year_of_days(int64_t z);
int64_t gtime_floor_div(int64_t a, int64_t b);
/* Resolves a wall-clock second count (read as if UTC) in tz, as Go's time.Date does. */
int64_t gtime_tz_wall_to_unix(const struct bt_tz *tz, int64_t wall);
/* Offset of the zone abbreviation abbr (n bytes) in tz, preferring one in effect at wall. */
bool gtime_tz_lookup_name(const struct bt_tz *tz, const char *abbr, size_t n, int64_t wall,
                          int32_t *off);

/* Writes fmt (with two string arguments) into err when err is not NULL. */
void gtime_set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b);

#endif
