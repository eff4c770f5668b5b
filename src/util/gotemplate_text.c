/*
 * gotemplate_text: UTF-8 decoding with Go's rules, simple case mapping, Unicode white space,
 * and the SHA3-256 / SHA-256 digests behind Hash and Sha2Hash, for gotemplate_funcs.c.
 */
#include <string.h>

#include "util/gotemplate_int.h"

/* ---- UTF-8 ------------------------------------------------------------------------------ */

/* Decodes one rune as Go does: an invalid sequence is U+FFFD of width 1. */
uint32_t gt_dec_rune(const char *sp, size_t n, size_t *w)
{
    const unsigned char *s = (const unsigned char *)sp;
    *w = 1;
    if (!n)
        return GT_RUNE_ERROR;
    unsigned c = s[0];
    if (c < 0x80)
        return c;
    size_t len;
    uint32_t r, min;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, r = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, r = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, r = c & 0x07, min = 0x10000;
    else
        return GT_RUNE_ERROR;
    if (n < len)
        return GT_RUNE_ERROR;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return GT_RUNE_ERROR;
        r = r << 6 | (s[i] & 0x3F);
    }
    if (r < min || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF))
        return GT_RUNE_ERROR;
    *w = len;
    return r;
}

/* The last rune of s[0..n) and its width (utf8.DecodeLastRuneInString). */
uint32_t gt_dec_last_rune(const char *s, size_t n, size_t *w)
{
    size_t start = n - 1, lim = n >= 4 ? n - 4 : 0;
    while (start > lim && ((unsigned char)s[start] & 0xC0) == 0x80)
        start--;
    size_t cw;
    uint32_t r = gt_dec_rune(s + start, n - start, &cw);
    if (start + cw != n) {
        *w = 1;
        return GT_RUNE_ERROR;
    }
    *w = cw;
    return r;
}

size_t gt_enc_rune(char *o, uint32_t r)
{
    if (r < 0x80) {
        o[0] = (char)r;
        return 1;
    }
    if (r < 0x800) {
        o[0] = (char)(0xC0 | (r >> 6));
        o[1] = (char)(0x80 | (r & 0x3F));
        return 2;
    }
    if (r < 0x10000) {
        o[0] = (char)(0xE0 | (r >> 12));
        o[1] = (char)(0x80 | ((r >> 6) & 0x3F));
        o[2] = (char)(0x80 | (r & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (r >> 18));
    o[1] = (char)(0x80 | ((r >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((r >> 6) & 0x3F));
    o[3] = (char)(0x80 | (r & 0x3F));
    return 4;
}

bool gt_is_space(uint32_t r)
{
    return r == ' ' || (r >= '\t' && r <= '\r') || r == 0x85 || r == 0xA0 || r == 0x1680 ||
           (r >= 0x2000 && r <= 0x200A) || r == 0x2028 || r == 0x2029 || r == 0x202F ||
           r == 0x205F || r == 0x3000;
}

/* Simple case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic. */
uint32_t gt_case_map(uint32_t r, bool upper)
{
    if (r < 0x80) {
        if (upper && r >= 'a' && r <= 'z')
            return r - 32;
        if (!upper && r >= 'A' && r <= 'Z')
            return r + 32;
        return r;
    }
    if (upper) {
        if ((r >= 0xE0 && r <= 0xFE && r != 0xF7) || (r >= 0x3B1 && r <= 0x3CB && r != 0x3C2) ||
            (r >= 0x430 && r <= 0x44F))
            return r - 32;
        if (r >= 0x450 && r <= 0x45F)
            return r - 80;
        switch (r) {
        case 0xB5: return 0x39C;
        case 0xFF: return 0x178;
        case 0x131: return 'I';
        case 0x17F: return 'S';
        case 0x3C2: return 0x3A3;
        case 0x3AC: return 0x386;
        case 0x3CC: return 0x38C;
        case 0x3CD:
        case 0x3CE: return r - 63;
        default: break;
        }
        if (r >= 0x3AD && r <= 0x3AF)
            return r - 37;
        if ((r >= 0x100 && r <= 0x12F) || (r >= 0x132 && r <= 0x137) || (r >= 0x14A && r <= 0x177))
            return (r & 1) ? r - 1 : r;
        if ((r >= 0x139 && r <= 0x148) || (r >= 0x179 && r <= 0x17E))
            return (r & 1) ? r : r - 1;
        return r;
    }
    if ((r >= 0xC0 && r <= 0xDE && r != 0xD7) || (r >= 0x391 && r <= 0x3AB && r != 0x3A2) ||
        (r >= 0x410 && r <= 0x42F))
        return r + 32;
    if (r >= 0x400 && r <= 0x40F)
        return r + 80;
    switch (r) {
    case 0x178: return 0xFF;
    case 0x130: return 'i';
    case 0x386: return 0x3AC;
    case 0x38C: return 0x3CC;
    case 0x38E:
    case 0x38F: return r + 63;
    default: break;
    }
    if (r >= 0x388 && r <= 0x38A)
        return r + 37;
    if ((r >= 0x100 && r <= 0x12F) || (r >= 0x132 && r <= 0x137) || (r >= 0x14A && r <= 0x177))
        return (r & 1) ? r : r + 1;
    if ((r >= 0x139 && r <= 0x148) || (r >= 0x179 && r <= 0x17E))
        return (r & 1) ? r + 1 : r;
    return r;
}

/* ---- hashes ----------------------------------------------------------------------------- */

static uint64_t rol64(uint64_t x, unsigned n)
{
    return n ? (x << n) | (x >> (64 - n)) : x;
}

static void keccak_f1600(uint64_t st[25])
{
    static const uint64_t rc[24] = {
        0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
        0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
        0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
        0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
        0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
        0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};
    static const unsigned rot[25] = {0,  1,  62, 28, 27, 36, 44, 6,  55, 20, 3,  10, 43,
                                     25, 39, 41, 45, 15, 21, 8,  18, 2,  61, 56, 14};
    static const unsigned char pi_dst[25] = {0,  10, 20, 5, 15, 16, 1,  11, 21, 6, 7,  17, 2,
                                             12, 22, 23, 8, 18, 3,  13, 14, 24, 9, 19, 4};
    for (int round = 0; round < 24; round++) {
        uint64_t c[5], d[5], b[25];
        for (int x = 0; x < 5; x++)
            c[x] = st[x] ^ st[x + 5] ^ st[x + 10] ^ st[x + 15] ^ st[x + 20];
        d[0] = c[4] ^ rol64(c[1], 1);
        d[1] = c[0] ^ rol64(c[2], 1);
        d[2] = c[1] ^ rol64(c[3], 1);
        d[3] = c[2] ^ rol64(c[4], 1);
        d[4] = c[3] ^ rol64(c[0], 1);
        /* theta, then rho and pi: B[y][2x+3y] = rot(A[x][y]) */
        for (int i = 0; i < 25; i++)
            b[pi_dst[i]] = rol64(st[i] ^ d[i % 5], rot[i]);
        for (int y = 0; y < 25; y += 5) {
            st[y + 0] = b[y + 0] ^ (~b[y + 1] & b[y + 2]);
            st[y + 1] = b[y + 1] ^ (~b[y + 2] & b[y + 3]);
            st[y + 2] = b[y + 2] ^ (~b[y + 3] & b[y + 4]);
            st[y + 3] = b[y + 3] ^ (~b[y + 4] & b[y + 0]);
            st[y + 4] = b[y + 4] ^ (~b[y + 0] & b[y + 1]);
        }
        st[0] ^= rc[round];
    }
}

void gt_sha3_absorb(struct gt_sha3 *h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h->st[h->pos / 8] ^= (uint64_t)s[i] << (8 * (h->pos % 8));
        if (++h->pos == GT_SHA3_256_RATE) {
            keccak_f1600(h->st);
            h->pos = 0;
        }
    }
}

void gt_sha3_256_final(struct gt_sha3 *h, unsigned char out[32])
{
    h->st[h->pos / 8] ^= (uint64_t)0x06 << (8 * (h->pos % 8));
    h->st[(GT_SHA3_256_RATE - 1) / 8] ^= (uint64_t)0x80 << (8 * ((GT_SHA3_256_RATE - 1) % 8));
    keccak_f1600(h->st);
    for (int i = 0; i < 32; i++)
        out[i] = (unsigned char)(h->st[i / 8] >> (8 * (i % 8)));
}

static uint32_t ror32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha256_block(struct gt_sha256 *s, const unsigned char *p)
{
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, s->h, sizeof(v));
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ror32(v[4], 6) ^ ror32(v[4], 11) ^ ror32(v[4], 25);
        uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
        uint32_t t1 = v[7] + S1 + ch + k[i] + w[i];
        uint32_t S0 = ror32(v[0], 2) ^ ror32(v[0], 13) ^ ror32(v[0], 22);
        uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
        memmove(v + 1, v, 7 * sizeof(v[0]));
        v[4] += t1;
        v[0] = t1 + S0 + maj;
    }
    for (int i = 0; i < 8; i++)
        s->h[i] += v[i];
}

void gt_sha256_init(struct gt_sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof(iv));
    s->fill = 0;
    s->len = 0;
}

void gt_sha256_update(struct gt_sha256 *s, const void *p, size_t n)
{
    const unsigned char *b = p;
    s->len += n;
    while (n) {
        size_t k = 64 - s->fill < n ? 64 - s->fill : n;
        memcpy(s->block + s->fill, b, k);
        s->fill += k;
        b += k;
        n -= k;
        if (s->fill == 64) {
            sha256_block(s, s->block);
            s->fill = 0;
        }
    }
}

void gt_sha256_final(struct gt_sha256 *s, unsigned char out[32])
{
    uint64_t bits = s->len * 8;
    unsigned char pad = 0x80, zero = 0, lenb[8];
    gt_sha256_update(s, &pad, 1);
    while (s->fill != 56)
        gt_sha256_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    gt_sha256_update(s, lenb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->h[i];
    }
}
