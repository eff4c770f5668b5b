/*
 * crc32c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of the spool's
 * records. With SSE 4.2's crc32 instruction where the CPU has it (checked once), else
 * table-driven, eight bytes at a time (slicing by 8; the tables are built on first use,
 * thread-safe).
 */
#ifndef BT_UTIL_CRC32C_H
#define BT_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC over n more bytes: start with crc = 0. crc32c("123456789") = 0xe3069283. */
uint32_t bt_crc32c(uint32_t crc, const void *p, size_t n);
/* The same with the tables only, what bt_crc32c uses without the instruction (tests). */
uint32_t bt_crc32c_portable(uint32_t crc, const void *p, size_t n);

#endif
