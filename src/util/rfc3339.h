/*
 * rfc3339: RFC 3339 timestamps (Go's time.RFC3339Nano as Docker and CRI write them) to Unix
 * nanoseconds.
 *
 * Accepts YYYY-MM-DDTHH:MM:SS, an optional fraction of any length (digits past the ninth are
 * dropped, as Go does), and Z or +hh:mm / -hh:mm. Rejects anything else, including leap second
 * 60 and out-of-range fields, as Go's parser does. Pure; no locale, no time zone database.
 */
#ifndef BT_UTIL_RFC3339_H
#define BT_UTIL_RFC3339_H

#include <stddef.h>
#include <stdint.h>

/* Parses exactly n bytes at s. 0 with *out_ns set, or -EINVAL (*out_ns untouched). */
int bt_rfc3339_parse(const char *s, size_t n, int64_t *out_ns);
/* Formats ns as RFC3339Nano UTC with trailing zeros of the fraction trimmed (Docker's form).
 * Returns the length written (out is NUL-terminated; 36 bytes always suffice). */
size_t bt_rfc3339_format(int64_t ns, char *out, size_t outlen);

#endif
