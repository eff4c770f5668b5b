#include "util/utf8.h"

#include <stdint.h>
#include <string.h>

#define HIGH_BITS 0x8080808080808080ull

/* Bytes [i, i + 8k) are ASCII: one OR of four words per 32 bytes (the compiler keeps them in
 * vector registers), then eight at a time. */
static size_t ascii_prefix(const unsigned char *s, size_t i, size_t n)
{
    while (i + 32 <= n) {
        uint64_t a, b, c, d;
        memcpy(&a, s + i, 8);
        memcpy(&b, s + i + 8, 8);
        memcpy(&c, s + i + 16, 8);
        memcpy(&d, s + i + 24, 8);
        if ((a | b | c | d) & HIGH_BITS)
            break;
        i += 32;
    }
    while (i + 8 <= n) {
        uint64_t a;
        memcpy(&a, s + i, 8);
        if (a & HIGH_BITS)
            break;
        i += 8;
    }
    return i;
}

bool bt_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = ascii_prefix(s, 0, n);
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            if (!(i & 7))
                i = ascii_prefix(s, i, n);
            continue;
        }
        size_t len;
        unsigned cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (len > n - i)
            return false;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}
