#include "util/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void bt_buf_init(struct bt_buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

int bt_buf_reserve(struct bt_buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return -E2BIG;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need)
        ncap = ncap > ((size_t)-1) / 2 ? need : ncap * 2;
    if (b->max != (size_t)-1 && ncap > b->max + 1)
        ncap = b->max + 1 > need ? b->max + 1 : need;
    char *p = realloc(b->ptr, ncap);
    if (!p)
        return -ENOMEM;
    b->ptr = p;
    b->cap = ncap;
    return 0;
}

int bt_buf_add(struct bt_buf *b, const void *p, size_t n)
{
    int rc = bt_buf_reserve(b, n);
    if (rc < 0) {
        bt_buf_free(b);
        return rc;
    }
    if (n)
        memcpy(b->ptr + b->len, p, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return 0;
}

int bt_buf_adds(struct bt_buf *b, const char *s)
{
    return bt_buf_add(b, s, strlen(s));
}

int bt_buf_vaddf(struct bt_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        bt_buf_free(b);
        return -EINVAL;
    }
    if ((size_t)n < sizeof(small))
        return bt_buf_add(b, small, (size_t)n);
    int rc = bt_buf_reserve(b, (size_t)n);
    if (rc < 0) {
        bt_buf_free(b);
        return rc;
    }
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int bt_buf_addf(struct bt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = bt_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void bt_buf_reset(struct bt_buf *b)
{
    b->len = 0;
    if (b->ptr)
        b->ptr[0] = '\0';
}

void bt_buf_free(struct bt_buf *b)
{
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
}

char *bt_buf_take(struct bt_buf *b, size_t *len)
{
    char *p = b->ptr;
    if (!p)
        p = calloc(1, 1);
    if (len)
        *len = b->len;
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

const char *bt_buf_str(const struct bt_buf *b)
{
    return b->ptr ? b->ptr : "";
}
