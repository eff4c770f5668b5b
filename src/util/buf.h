/*
 * buf: a growable byte buffer with a hard cap.
 *
 * Every buffer that grows from outside input has a maximum size fixed at init. The content is
 * always NUL-terminated so it can be used as a C string. A failed append (allocation failure or
 * cap exceeded) frees the buffer and leaves it empty, so callers cannot keep using half-built
 * content by accident. The buffer owns its memory until bt_buf_take() hands it over.
 */
#ifndef BT_UTIL_BUF_H
#define BT_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct bt_buf {
    char *ptr;
    size_t len;
    size_t cap;
    size_t max;
};

/* Prepares an empty buffer that may grow to max bytes (not counting the NUL). Allocates nothing. */
void bt_buf_init(struct bt_buf *b, size_t max);
/* Appends n bytes. 0, -ENOMEM or -E2BIG; on failure the buffer is freed (len 0). */
int bt_buf_add(struct bt_buf *b, const void *p, size_t n);
/* Appends a NUL-terminated string. Same failure rules as bt_buf_add. */
int bt_buf_adds(struct bt_buf *b, const char *s);
/* Appends printf-style output. Same failure rules as bt_buf_add. */
int bt_buf_addf(struct bt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int bt_buf_vaddf(struct bt_buf *b, const char *fmt, va_list ap);
/* Ensures room for n more bytes without changing len. 0, -ENOMEM or -E2BIG (buffer kept). */
int bt_buf_reserve(struct bt_buf *b, size_t n);
/* Forgets the content but keeps the memory for reuse. */
void bt_buf_reset(struct bt_buf *b);
/* Frees the memory; the buffer may be reused after, with the same max. */
void bt_buf_free(struct bt_buf *b);
/* Returns the content (NUL-terminated, caller frees) and leaves the buffer empty. Never NULL
 * unless allocation fails; *len (optional) gets the length. */
char *bt_buf_take(struct bt_buf *b, size_t *len);
/* Returns the content as a C string ("" for an empty buffer). Valid until the next change. */
const char *bt_buf_str(const struct bt_buf *b);

#endif
