/*
 * timeutil: clocks and the duration, size and boolean strings of promtail configs and flags.
 */
#ifndef BT_UTIL_TIMEUTIL_H
#define BT_UTIL_TIMEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_NS_PER_SEC 1000000000LL
#define BT_NS_PER_MS 1000000LL

/* Wall clock, Unix nanoseconds. */
int64_t bt_now_ns(void);
/* Monotonic clock, nanoseconds. */
int64_t bt_mono_ns(void);
/* CLOCK_MONOTONIC_COARSE: a few ms behind bt_mono_ns (never ahead), but only a memory read;
 * for per-entry bookkeeping whose precision is the batch clock's, not for timers. */
int64_t bt_mono_coarse_ns(void);
/* Parses a Go duration ("1s", "500ms", "1h30m", "2.5s", "0"; units ns us µs ms s m h) and
 * also promtail's "d", "w", "y" day/week/year units. 0 or -EINVAL. */
int bt_parse_duration(const char *s, int64_t *out_ns);
/* Parses a byte size: plain integer, or with units B, KB/MB/GB (powers of 1000 as dskit's
 * flagext.ByteSize via humanize), KiB/MiB/GiB and K/M/G (powers of 1024). 0 or -EINVAL. */
int bt_parse_bytes(const char *s, uint64_t *out);
/* Go's strconv.ParseBool: 1 t T true TRUE True, 0 f F false FALSE False. 0 or -EINVAL. */
int bt_parse_bool(const char *s, bool *out);
/* Formats a duration as Go does ("1m30s", "500ms"). Returns out. */
const char *bt_format_duration(char *out, size_t outlen, int64_t ns);

#endif
