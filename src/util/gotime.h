/*
 * gotime: parse timestamps the way Go's time.Parse does, for the timestamp stage.
 *
 * A format is either one of promtail's named formats (ANSIC, UnixDate, RubyDate, RFC822,
 * RFC822Z, RFC850, RFC1123, RFC1123Z, RFC3339, RFC3339Nano, Unix, UnixMs, UnixUs, UnixNs) or a
 * Go reference-time layout ("2006-01-02T15:04:05.000Z07:00"). bt_gotime_new() tokenizes the
 * layout once; bt_gotime_parse() then matches a value against it with no allocation. Results are
 * Unix nanoseconds; instants outside the int64 nanosecond range are -ERANGE.
 *
 * Rules reproduced from Go and promtail: fractional seconds of any length after a seconds field
 * even when the layout has none (digits past the ninth are ignored); `.999` and `.000` fields;
 * runs of spaces in the layout match runs of spaces in the value; month and weekday names are
 * case-insensitive; a layout without "06"/"2006" gets the current year (of now_ns, in UTC)
 * with the Dec/Jan rollover promtail applies; named Go layouts ignore `location`, custom layouts
 * without a zone use it. A zone abbreviation (MST) is resolved against the location if one is given
 * ("UTC" always); an unknown abbreviation means offset 0, as in Go. Without a location Go consults
 * the host's Local zone for abbreviations; we do not (documented difference).
 *
 * Time zones (struct bt_tz) are read from TZif files (v1, v2, v3, with the POSIX TZ footer for
 * instants past the last transition) under $ZONEINFO or the system zoneinfo directory. A loaded
 * zone is immutable, so one may be shared between threads. Nothing here calls tzset/localtime.
 */
#ifndef BT_UTIL_GOTIME_H
#define BT_UTIL_GOTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bt_tz;
struct bt_gotime;

/* Loads the IANA zone name ("Europe/Berlin"; "UTC" and "" are UTC; "Local" is the host zone)
 * from $ZONEINFO or the system zoneinfo directory. NULL with a message in err on failure. */
struct bt_tz *bt_tz_load(const char *name, char *err, size_t errlen);
/* Same, from the directory dir only (tests, embedded zone databases). */
struct bt_tz *bt_tz_load_dir(const char *dir, const char *name, char *err, size_t errlen);
/* Parses an in-memory TZif image. name is copied. NULL with a message in err on bad data. */
struct bt_tz *bt_tz_from_tzif(const char *name, const unsigned char *data, size_t len, char *err,
                              size_t errlen);
void bt_tz_free(struct bt_tz *tz);
/* The zone's name as given at load (borrowed). */
const char *bt_tz_name(const struct bt_tz *tz);
/* Offset east of UTC in seconds in effect at the instant unix_sec; *abbr (optional) gets the
 * abbreviation, borrowed from tz. */
int bt_tz_offset(const struct bt_tz *tz, int64_t unix_sec, const char **abbr);

/* Compiles format (named or Go layout). loc is borrowed and must outlive the format; NULL means
 * UTC. NULL with a message in err if the format is empty or too long. */
struct bt_gotime *bt_gotime_new(const char *format, const struct bt_tz *loc, char *err,
                                size_t errlen);
void bt_gotime_free(struct bt_gotime *f);
/* True when parsing with f reads now_ns (a layout without a year): callers may skip reading
 * the clock otherwise. */
bool bt_gotime_uses_now(const struct bt_gotime *f);
/* Parses the n bytes at s. now_ns supplies the year for year-less layouts. 0 and *out_ns set,
 * -EINVAL when s does not match, -ERANGE when a field or the result is out of range. */
int bt_gotime_parse(const struct bt_gotime *f, const char *s, size_t n, int64_t now_ns,
                    int64_t *out_ns);
/* One-shot convenience: compile, parse, free (allocates; not for hot paths). */
int bt_gotime_parse_once(const char *format, const struct bt_tz *loc, const char *s, int64_t now_ns,
                         int64_t *out_ns);

#endif
