#pragma once
/* UTF-8 validation for the hot path: every line read is checked once, to count (not change)
 * the lines Loki would store with replacement characters. */
#include <stdbool.h>
#include <stddef.h>

/* True if s is valid UTF-8 as Go's utf8.Valid sees it (no surrogates, no overlongs, nothing
 * past U+10FFFF). ASCII runs are checked 32 bytes at a time. */
bool bt_utf8_valid(const char *s, size_t n);
