/* sha1.h -- SHA-1 (FIPS 180-4) and base64 (RFC 4648 §4) for wspush.
 *
 * This is free and unencumbered software released into the public domain.
 * Anyone is free to copy, modify, publish, use, compile, sell, or
 * distribute this software, either in source code form or as a compiled
 * binary, for any purpose, commercial or non-commercial, and by any means.
 * THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND (the
 * Unlicense: https://unlicense.org; its full text is in LICENSE).
 *
 * WebSocket needs both exactly once per connection: the server proves it
 * read the handshake by answering base64(SHA-1(key + GUID)) (RFC 6455
 * §4.2.2). SHA-1 is broken for signatures; here it is only a checksum
 * the protocol asks for. */
#ifndef SHA1_H
#define SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_DIGEST_LEN 20

struct sha1 {
    uint32_t h[5];              /* the running hash, H0..H4            */
    uint64_t total;             /* message bytes seen so far           */
    unsigned char block[64];    /* bytes waiting for a full block      */
};

void sha1_init(struct sha1 *s);
void sha1_update(struct sha1 *s, const void *data, size_t len);
void sha1_final(struct sha1 *s, unsigned char digest[SHA1_DIGEST_LEN]);

/* Length of the base64 text for len input bytes, without the NUL. */
#define BASE64_LEN(len) (((len) + 2) / 3 * 4)

/* Write base64 of in[0..len) plus a NUL to out, with no line breaks.
 * Returns the text's length, or 0 if outcap is too small for it. */
size_t base64_encode(char *out, size_t outcap, const void *in, size_t len);

#endif
