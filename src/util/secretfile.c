/* Secret files; see secretfile.h. */
#include "util/secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int bt_read_secret(const char *path, char *out, size_t outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = 0;
    int rc = 0;
    while (n + 1 < outlen) {
        ssize_t r = read(fd, out + n, outlen - 1 - n);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rc)
        return rc;
    if (n + 1 >= outlen)
        return -EFBIG;
    out[n] = '\0';
    while (n &&
           (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ' || out[n - 1] == '\t'))
        out[--n] = '\0';
    size_t s = 0;
    while (out[s] == ' ' || out[s] == '\t' || out[s] == '\n' || out[s] == '\r')
        s++;
    memmove(out, out + s, n - s + 1);
    return 0;
}
