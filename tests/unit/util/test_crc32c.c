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
