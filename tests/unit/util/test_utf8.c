#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

/* Byte by byte, as the specification reads: the reference the fast path is held to. */
static bool reference(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], len, cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF)
            len = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if (i + len > n)
            return false;
        for (unsigned j = 1; j < len; j++) {
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

Test(utf8, go_rules_on_the_edges)
{
    cr_assert(bt_utf8_valid("", 0));
    cr_assert(bt_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    cr_assert(bt_utf8_valid("\xf4\x8f\xbf\xbf", 4));     /* U+10FFFF */
    cr_assert_not(bt_utf8_valid("\xf4\x90\x80\x80", 4)); /* past U+10FFFF */
    cr_assert_not(bt_utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    cr_assert_not(bt_utf8_valid("\xe0\x80\xaf", 3));     /* overlong, three bytes */
    cr_assert_not(bt_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    cr_assert_not(bt_utf8_valid("\xe2\x82", 2));         /* cut short */
    cr_assert_not(bt_utf8_valid("\x80", 1));             /* a lone continuation byte */
}

/* Every position of a bad or good sequence in and around the 8- and 32-byte ASCII strides. */
Test(utf8, fast_path_agrees_with_the_reference_at_every_offset)
{
    static const char *const seqs[] = {
        "\xc3\xa9", "\xf0\x9f\x98\x80", "\xe2\x82", "\xff", "\xed\xa0\x80", "\x80", "\xe2\x82\xac"};
    unsigned char buf[160];
    for (size_t k = 0; k < sizeof(seqs) / sizeof(seqs[0]); k++) {
        size_t sl = strlen(seqs[k]);
        for (size_t len = sl; len <= 100; len++)
            for (size_t at = 0; at + sl <= len; at++) {
                memset(buf, 'a', len);
                memcpy(buf + at, seqs[k], sl);
                cr_assert_eq(bt_utf8_valid((const char *)buf, len), reference(buf, len),
                             "sequence %zu at %zu of %zu", k, at, len);
            }
    }
    srand(7);
    for (int r = 0; r < 20000; r++) {
        size_t len = (size_t)(rand() % 150);
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)(rand() % 8 ? 'a' + rand() % 26 : rand() % 256);
        cr_assert_eq(bt_utf8_valid((const char *)buf, len), reference(buf, len), "round %d", r);
    }
}
