#include <criterion/criterion.h>

#include <string.h>

#include "util/crc32c.h"

Test(crc32c, matches_the_check_value_of_the_castagnoli_polynomial)
{
    cr_assert_eq(bt_crc32c(0, "123456789", 9), 0xe3069283u);
    cr_assert_eq(bt_crc32c(0, "", 0), 0);
}

Test(crc32c, continues_over_pieces)
{
    const char *s = "the quick brown fox jumps over the lazy dog";
    uint32_t whole = bt_crc32c(0, s, strlen(s));
    uint32_t parts = bt_crc32c(bt_crc32c(0, s, 10), s + 10, strlen(s) - 10);
    cr_assert_eq(whole, parts);
    unsigned char zeros[32] = {0};
    cr_assert_eq(bt_crc32c(0, zeros, sizeof(zeros)), 0x8a9136aau); /* RFC 3720 B.4 */
}

/* The definition, one bit at a time. */
static uint32_t crc_bitwise(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

Test(crc32c, agrees_with_the_bitwise_definition_at_every_length_and_alignment)
{
    unsigned char buf[300];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    for (size_t start = 0; start < 8; start++)
        for (size_t n = 0; n + start <= sizeof(buf); n += 1 + n / 16) {
            cr_assert_eq(bt_crc32c(0, buf + start, n), crc_bitwise(buf + start, n),
                         "start %zu length %zu", start, n);
            cr_assert_eq(bt_crc32c_portable(0, buf + start, n), crc_bitwise(buf + start, n),
                         "tables: start %zu length %zu", start, n);
        }
}
