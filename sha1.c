/* sha1.c -- SHA-1 from FIPS 180-4 §6.1 and base64 from RFC 4648 §4.
 *
 * This is free and unencumbered software released into the public domain.
 * Anyone is free to copy, modify, publish, use, compile, sell, or
 * distribute this software, either in source code form or as a compiled
 * binary, for any purpose, commercial or non-commercial, and by any means.
 * THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND (the
 * Unlicense: https://unlicense.org; its full text is in LICENSE).
 *
 * SHA-1 cuts the message into 64-byte blocks. Each block is stretched
 * into 80 words W[t] and stirred into five 32-bit words of state with
 * 80 rounds of additions, rotations and one of three bit functions. The
 * last block is padded with 0x80, zeros and the message length in bits.
 *
 * Test vectors (FIPS 180-4 examples, RFC 3174 §7.3), checked by
 * tests/unit.c:
 *   ""       da39a3ee 5e6b4b0d 3255bfef 95601890 afd80709
 *   "abc"    a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d
 *   "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" (448 bits)
 *            84983e44 1c3bd26e baae4aa1 f95129e5 e54670f1
 *   one million "a"
 *            34aa973c d4c4daa4 f61eeb2b dbad2731 6534016f */
#include <string.h>

#include "sha1.h"

/* Rotate the 32-bit word x left by n bits (FIPS 180-4 §3.2, ROTL). */
static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

/* Read 4 bytes as a big-endian word; SHA-1 is defined on big-endian words. */
static uint32_t load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Mix one 64-byte block into the state (FIPS 180-4 §6.1.2, steps 1-4). */
static void sha1_block(uint32_t h[5], const unsigned char *block)
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    for (int t = 16; t < 80; t++)
        w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);             /* Ch     */
            k = 0x5a827999;
        } else if (t < 40) {
            f = b ^ c ^ d;                      /* Parity */
            k = 0x6ed9eba1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);    /* Maj    */
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;                      /* Parity */
            k = 0xca62c1d6;
        }
        uint32_t temp = rol(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = temp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* Start a new hash with the initial values of FIPS 180-4 §5.3.1. */
void sha1_init(struct sha1 *s)
{
    s->h[0] = 0x67452301;
    s->h[1] = 0xefcdab89;
    s->h[2] = 0x98badcfe;
    s->h[3] = 0x10325476;
    s->h[4] = 0xc3d2e1f0;
    s->total = 0;
}

/* Add data[0..len) to the message; whole blocks are mixed in at once,
 * a partial block waits in s->block for more bytes or sha1_final(). */
void sha1_update(struct sha1 *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t have = (size_t)(s->total % 64);

    s->total += len;
    if (have > 0) {
        size_t take = 64 - have < len ? 64 - have : len;
        memcpy(s->block + have, p, take);
        p += take;
        len -= take;
        if (have + take < 64)
            return;
        sha1_block(s->h, s->block);
    }
    for (; len >= 64; p += 64, len -= 64)
        sha1_block(s->h, p);
    memcpy(s->block, p, len);
}

/* Pad the message (FIPS 180-4 §5.1.1: 0x80, zeros, the 64-bit length in
 * bits) and write the 20-byte digest, big-endian word by word. */
void sha1_final(struct sha1 *s, unsigned char digest[SHA1_DIGEST_LEN])
{
    uint64_t bits = s->total * 8;
    size_t have = (size_t)(s->total % 64);

    s->block[have++] = 0x80;
    if (have > 56) {
        memset(s->block + have, 0, 64 - have);
        sha1_block(s->h, s->block);
        have = 0;
    }
    memset(s->block + have, 0, 56 - have);
    for (int i = 0; i < 8; i++)
        s->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha1_block(s->h, s->block);

    for (int i = 0; i < 5; i++) {
        digest[4 * i] = (unsigned char)(s->h[i] >> 24);
        digest[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        digest[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        digest[4 * i + 3] = (unsigned char)s->h[i];
    }
}

/* RFC 4648 §4: each 3 input bytes become 4 characters of this alphabet;
 * a last group of 1 or 2 bytes is padded with "==" or "=". */
size_t base64_encode(char *out, size_t outcap, const void *in, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = in;

    if (len > (SIZE_MAX - 1) / 4 * 3 - 2 || outcap < BASE64_LEN(len) + 1)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t group = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            group |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            group |= p[i + 2];
        out[o++] = alphabet[group >> 18 & 63];
        out[o++] = alphabet[group >> 12 & 63];
        out[o++] = i + 1 < len ? alphabet[group >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? alphabet[group & 63] : '=';
    }
    out[o] = '\0';
    return o;
}
