/*
 * tls: the server side of TLS on a non-blocking socket, for receivers that take TLS (syslog's
 * tls_config). A context holds the certificate, its key and, when a CA file is given, requires
 * and checks client certificates against it. A connection is driven by bt_tls_read alone: the
 * handshake happens inside the first reads. The only file that includes OpenSSL's headers.
 */
#ifndef BT_UTIL_TLS_H
#define BT_UTIL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct bt_tls_ctx;
struct bt_tls;

/* cert_file and key_file are required (PEM); ca_file may be NULL (no client certificates).
 * NULL with a message naming the file in err. */
struct bt_tls_ctx *bt_tls_server_new(const char *cert_file, const char *key_file,
                                     const char *ca_file, char *err, size_t errlen);
void bt_tls_ctx_free(struct bt_tls_ctx *c);

/* A server connection on fd (not owned: the caller closes it after bt_tls_free). NULL on
 * failure. */
struct bt_tls *bt_tls_accept(struct bt_tls_ctx *c, int fd);
void bt_tls_free(struct bt_tls *t);

/* Reads decrypted bytes: > 0 bytes, 0 at the peer's close, -EAGAIN to wait for the socket to
 * be readable, -ENOBUFS to wait until it is writable (a handshake message did not fit),
 * -EPROTO for a failed handshake (a client certificate missing or not signed by the CA) or a
 * broken record. */
ssize_t bt_tls_read(struct bt_tls *t, void *buf, size_t n);
/* True when decrypted bytes wait inside TLS (the socket may not be readable again). */
bool bt_tls_pending(const struct bt_tls *t);
/* A short description of the last failure of this connection (for logs). */
const char *bt_tls_error(const struct bt_tls *t);

#endif
