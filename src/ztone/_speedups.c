/*
 * ztone._speedups: optional native accelerator for the ZeroTier crypto hot paths.
 *
 * Contract: src/ztone/_speedups.pyi. Every function gives byte-identical results to
 * its pure-Python reference (named in the stub). Algorithms follow
 * PROTOCOL-CORE.md: §2.4 (memory-hard hash), §4.4 (Salsa20/12 + Poly1305 armor),
 * §4.5 (AES-GMAC-SIV, AES from OpenSSL libcrypto).
 *
 *   Salsa20   DJB's original: 256-bit key, 64-bit nonce, 64-bit LE block counter,
 *             8, 12 or 20 rounds; four blocks at a time with GCC/Clang vector
 *             extensions where available (-DZTONE_NO_VECTOR: plain C99 only).
 *   Poly1305  RFC 8439 §2.5, 26-bit limbs, 64-bit products (portable C99).
 *   AES       OpenSSL EVP contexts made once per AesGmacSiv object.
 *   C25519    X25519 agreement and Ed25519 sign/verify, OpenSSL EVP_PKEY raw keys
 *             (the primitives only; ZeroTier's framing is in crypto/c25519.py).
 *
 * Per-packet functions hold the GIL (they are a few microseconds and mutate their
 * arguments); only memory_hard_hash releases it.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "_mem_pages.h"

/* ------------------------------------------------------------------------- */
/* Little helpers                                                            */
/* ------------------------------------------------------------------------- */

static inline uint32_t load32_le(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline void store32_le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint64_t load64_be(const uint8_t *p)
{
    return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
           ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
           ((uint64_t)p[6] << 8) | (uint64_t)p[7];
}

/* XOR n bytes of src into dst (dst ^= src). */
static inline void xor_bytes(uint8_t *dst, const uint8_t *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t a, b;
        memcpy(&a, dst + i, 8);
        memcpy(&b, src + i, 8);
        a ^= b;
        memcpy(dst + i, &a, 8);
    }
    for (; i < n; i++)
        dst[i] ^= src[i];
}

/* Constant-time equality of two n-byte strings: 1 if equal. */
static int ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t acc = 0;
    size_t i;
    for (i = 0; i < n; i++)
        acc |= (uint8_t)(a[i] ^ b[i]);
    return acc == 0;
}

/* Best-effort wipe of key material on the stack. */
static void wipe(void *p, size_t n)
{
#if defined(__GNUC__)
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory"); /* keep the memset */
#else
    volatile uint8_t *v = (volatile uint8_t *)p;
    while (n--)
        *v++ = 0;
#endif
}

/* ------------------------------------------------------------------------- */
/* Salsa20                                                                   */
/* ------------------------------------------------------------------------- */

#define ROTL32(v, c) (((v) << (c)) | ((v) >> (32 - (c))))

typedef struct {
    uint32_t s[16]; /* words 8, 9 are the block counter */
    int rounds;
} salsa_t;

static void salsa_init(salsa_t *st, const uint8_t key[32], const uint8_t nonce[8], int rounds,
                       uint64_t counter)
{
    st->s[0] = 0x61707865u; /* "expa" */
    st->s[1] = load32_le(key + 0);
    st->s[2] = load32_le(key + 4);
    st->s[3] = load32_le(key + 8);
    st->s[4] = load32_le(key + 12);
    st->s[5] = 0x3320646eu; /* "nd 3" */
    st->s[6] = load32_le(nonce + 0);
    st->s[7] = load32_le(nonce + 4);
    st->s[8] = (uint32_t)counter;
    st->s[9] = (uint32_t)(counter >> 32);
    st->s[10] = 0x79622d32u; /* "2-by" */
    st->s[11] = load32_le(key + 16);
    st->s[12] = load32_le(key + 20);
    st->s[13] = load32_le(key + 24);
    st->s[14] = load32_le(key + 28);
    st->s[15] = 0x6b206574u; /* "te k" */
    st->rounds = rounds;
}

static inline void salsa_next_counter(salsa_t *st)
{
    if (++st->s[8] == 0)
        ++st->s[9];
}

/* One 64-byte keystream block at the current counter; advances the counter. */
static void salsa_block(salsa_t *st, uint8_t out[64])
{
    uint32_t x0 = st->s[0], x1 = st->s[1], x2 = st->s[2], x3 = st->s[3];
    uint32_t x4 = st->s[4], x5 = st->s[5], x6 = st->s[6], x7 = st->s[7];
    uint32_t x8 = st->s[8], x9 = st->s[9], x10 = st->s[10], x11 = st->s[11];
    uint32_t x12 = st->s[12], x13 = st->s[13], x14 = st->s[14], x15 = st->s[15];
    int i;

#define QR(a, b, c, d)              \
    do {                            \
        b ^= ROTL32(a + d, 7);      \
        c ^= ROTL32(b + a, 9);      \
        d ^= ROTL32(c + b, 13);     \
        a ^= ROTL32(d + c, 18);     \
    } while (0)

    for (i = 0; i < st->rounds; i += 2) {
        /* column round */
        QR(x0, x4, x8, x12);
        QR(x5, x9, x13, x1);
        QR(x10, x14, x2, x6);
        QR(x15, x3, x7, x11);
        /* row round */
        QR(x0, x1, x2, x3);
        QR(x5, x6, x7, x4);
        QR(x10, x11, x8, x9);
        QR(x15, x12, x13, x14);
    }
#undef QR

    store32_le(out + 0, x0 + st->s[0]);
    store32_le(out + 4, x1 + st->s[1]);
    store32_le(out + 8, x2 + st->s[2]);
    store32_le(out + 12, x3 + st->s[3]);
    store32_le(out + 16, x4 + st->s[4]);
    store32_le(out + 20, x5 + st->s[5]);
    store32_le(out + 24, x6 + st->s[6]);
    store32_le(out + 28, x7 + st->s[7]);
    store32_le(out + 32, x8 + st->s[8]);
    store32_le(out + 36, x9 + st->s[9]);
    store32_le(out + 40, x10 + st->s[10]);
    store32_le(out + 44, x11 + st->s[11]);
    store32_le(out + 48, x12 + st->s[12]);
    store32_le(out + 52, x13 + st->s[13]);
    store32_le(out + 56, x14 + st->s[14]);
    store32_le(out + 60, x15 + st->s[15]);
    salsa_next_counter(st);
}

/* Four consecutive keystream blocks (256 bytes) at once; advances the counter by 4.
   With GCC/Clang vector extensions each state word is a 4-lane vector holding that
   word for the four blocks (SSE2 on x86-64, NEON on arm64); elsewhere it is four
   calls of salsa_block. */
#if defined(__GNUC__) && !defined(ZTONE_NO_VECTOR)
typedef uint32_t v4u32 __attribute__((vector_size(16)));

static void salsa_block4(salsa_t *st, uint8_t out[256])
{
    v4u32 x[16], in[16];
    uint32_t lanes[16][4];
    uint64_t ctr = (uint64_t)st->s[8] | ((uint64_t)st->s[9] << 32);
    int i, b;

    for (i = 0; i < 16; i++) {
        v4u32 v = {st->s[i], st->s[i], st->s[i], st->s[i]};
        in[i] = v;
    }
    for (b = 0; b < 4; b++) {
        in[8][b] = (uint32_t)(ctr + (uint64_t)b);
        in[9][b] = (uint32_t)((ctr + (uint64_t)b) >> 32);
    }
    memcpy(x, in, sizeof x);

#define VQR(a, b, c, d)                          \
    do {                                         \
        v4u32 t_;                                \
        t_ = x[a] + x[d]; x[b] ^= (t_ << 7) | (t_ >> 25);  \
        t_ = x[b] + x[a]; x[c] ^= (t_ << 9) | (t_ >> 23);  \
        t_ = x[c] + x[b]; x[d] ^= (t_ << 13) | (t_ >> 19); \
        t_ = x[d] + x[c]; x[a] ^= (t_ << 18) | (t_ >> 14); \
    } while (0)

    for (i = 0; i < st->rounds; i += 2) {
        VQR(0, 4, 8, 12);
        VQR(5, 9, 13, 1);
        VQR(10, 14, 2, 6);
        VQR(15, 3, 7, 11);
        VQR(0, 1, 2, 3);
        VQR(5, 6, 7, 4);
        VQR(10, 11, 8, 9);
        VQR(15, 12, 13, 14);
    }
#undef VQR

    for (i = 0; i < 16; i++) {
        v4u32 v = x[i] + in[i];
        memcpy(lanes[i], &v, 16);
    }
    for (b = 0; b < 4; b++)
        for (i = 0; i < 16; i++)
            store32_le(out + 64 * b + 4 * i, lanes[i][b]);

    ctr += 4;
    st->s[8] = (uint32_t)ctr;
    st->s[9] = (uint32_t)(ctr >> 32);
}
#else
static void salsa_block4(salsa_t *st, uint8_t out[256])
{
    salsa_block(st, out);
    salsa_block(st, out + 64);
    salsa_block(st, out + 128);
    salsa_block(st, out + 192);
}
#endif

/* data ^= keystream, starting at the current counter (block aligned). */
static void salsa_xor(salsa_t *st, uint8_t *data, size_t n)
{
    uint8_t ks[256];
    while (n > 128) {
        /* 4 blocks at a time; a tail of 129..255 bytes is cheaper this way too */
        size_t take = n < 256 ? n : 256;
        salsa_block4(st, ks);
        xor_bytes(data, ks, take);
        data += take;
        n -= take;
    }
    while (n > 0) {
        size_t take = n < 64 ? n : 64;
        salsa_block(st, ks);
        xor_bytes(data, ks, take);
        data += take;
        n -= take;
    }
    wipe(ks, sizeof ks);
}

/* ------------------------------------------------------------------------- */
/* Poly1305 (RFC 8439), 5 x 26-bit limbs                                     */
/* ------------------------------------------------------------------------- */

#define M26 0x3ffffffu

typedef struct {
    uint32_t r[5];
    uint32_t h[5];
    uint32_t pad[4];
} poly1305_t;

static void poly1305_init(poly1305_t *st, const uint8_t key[32])
{
    /* r = key[0:16] as LE int, clamped with 0x0ffffffc0ffffffc0ffffffc0fffffff,
       split into 26-bit limbs. */
    st->r[0] = load32_le(key + 0) & 0x3ffffffu;
    st->r[1] = (load32_le(key + 3) >> 2) & 0x3ffff03u;
    st->r[2] = (load32_le(key + 6) >> 4) & 0x3ffc0ffu;
    st->r[3] = (load32_le(key + 9) >> 6) & 0x3f03fffu;
    st->r[4] = (load32_le(key + 12) >> 8) & 0x00fffffu;
    memset(st->h, 0, sizeof st->h);
    st->pad[0] = load32_le(key + 16);
    st->pad[1] = load32_le(key + 20);
    st->pad[2] = load32_le(key + 24);
    st->pad[3] = load32_le(key + 28);
}

/* Absorb nblocks full 16-byte blocks; hibit is 1<<24 for full blocks, 0 for the
   already-padded final partial block. */
static void poly1305_blocks(poly1305_t *st, const uint8_t *m, size_t nblocks, uint32_t hibit)
{
    const uint64_t r0 = st->r[0], r1 = st->r[1], r2 = st->r[2], r3 = st->r[3], r4 = st->r[4];
    const uint64_t s1 = r1 * 5, s2 = r2 * 5, s3 = r3 * 5, s4 = r4 * 5;
    uint32_t h0 = st->h[0], h1 = st->h[1], h2 = st->h[2], h3 = st->h[3], h4 = st->h[4];

    while (nblocks--) {
        uint64_t d0, d1, d2, d3, d4;
        uint32_t c;

        h0 += load32_le(m + 0) & M26;
        h1 += (load32_le(m + 3) >> 2) & M26;
        h2 += (load32_le(m + 6) >> 4) & M26;
        h3 += (load32_le(m + 9) >> 6) & M26;
        h4 += (load32_le(m + 12) >> 8) | hibit;

        /* h *= r (mod 2^130 - 5); 2^130 == 5, hence the s = 5r terms. */
        d0 = (uint64_t)h0 * r0 + (uint64_t)h1 * s4 + (uint64_t)h2 * s3 + (uint64_t)h3 * s2 +
             (uint64_t)h4 * s1;
        d1 = (uint64_t)h0 * r1 + (uint64_t)h1 * r0 + (uint64_t)h2 * s4 + (uint64_t)h3 * s3 +
             (uint64_t)h4 * s2;
        d2 = (uint64_t)h0 * r2 + (uint64_t)h1 * r1 + (uint64_t)h2 * r0 + (uint64_t)h3 * s4 +
             (uint64_t)h4 * s3;
        d3 = (uint64_t)h0 * r3 + (uint64_t)h1 * r2 + (uint64_t)h2 * r1 + (uint64_t)h3 * r0 +
             (uint64_t)h4 * s4;
        d4 = (uint64_t)h0 * r4 + (uint64_t)h1 * r3 + (uint64_t)h2 * r2 + (uint64_t)h3 * r1 +
             (uint64_t)h4 * r0;

        /* partial carry propagation back to 26-bit limbs */
        c = (uint32_t)(d0 >> 26); h0 = (uint32_t)d0 & M26;
        d1 += c; c = (uint32_t)(d1 >> 26); h1 = (uint32_t)d1 & M26;
        d2 += c; c = (uint32_t)(d2 >> 26); h2 = (uint32_t)d2 & M26;
        d3 += c; c = (uint32_t)(d3 >> 26); h3 = (uint32_t)d3 & M26;
        d4 += c; c = (uint32_t)(d4 >> 26); h4 = (uint32_t)d4 & M26;
        h0 += c * 5; c = h0 >> 26; h0 &= M26;
        h1 += c;

        m += 16;
    }
    st->h[0] = h0; st->h[1] = h1; st->h[2] = h2; st->h[3] = h3; st->h[4] = h4;
}

static void poly1305_finish(poly1305_t *st, uint8_t tag[16])
{
    uint32_t h0 = st->h[0], h1 = st->h[1], h2 = st->h[2], h3 = st->h[3], h4 = st->h[4];
    uint32_t g0, g1, g2, g3, g4, c, mask;
    uint64_t f;

    /* full carry */
    c = h1 >> 26; h1 &= M26;
    h2 += c; c = h2 >> 26; h2 &= M26;
    h3 += c; c = h3 >> 26; h3 &= M26;
    h4 += c; c = h4 >> 26; h4 &= M26;
    h0 += c * 5; c = h0 >> 26; h0 &= M26;
    h1 += c;

    /* g = h + 5 - 2^130; use g if it did not go negative (i.e. h >= p) */
    g0 = h0 + 5; c = g0 >> 26; g0 &= M26;
    g1 = h1 + c; c = g1 >> 26; g1 &= M26;
    g2 = h2 + c; c = g2 >> 26; g2 &= M26;
    g3 = h3 + c; c = g3 >> 26; g3 &= M26;
    g4 = h4 + c - (1u << 26);

    mask = (g4 >> 31) - 1u; /* all ones if g4 >= 0 (take g), zero otherwise */
    h0 = (h0 & ~mask) | (g0 & mask);
    h1 = (h1 & ~mask) | (g1 & mask);
    h2 = (h2 & ~mask) | (g2 & mask);
    h3 = (h3 & ~mask) | (g3 & mask);
    h4 = (h4 & ~mask) | (g4 & mask);

    /* repack into 4 x 32 bits (mod 2^128) */
    h0 = h0 | (h1 << 26);
    h1 = (h1 >> 6) | (h2 << 20);
    h2 = (h2 >> 12) | (h3 << 14);
    h3 = (h3 >> 18) | (h4 << 8);

    /* tag = (h + s) mod 2^128 */
    f = (uint64_t)h0 + st->pad[0]; store32_le(tag + 0, (uint32_t)f);
    f = (uint64_t)h1 + st->pad[1] + (f >> 32); store32_le(tag + 4, (uint32_t)f);
    f = (uint64_t)h2 + st->pad[2] + (f >> 32); store32_le(tag + 8, (uint32_t)f);
    f = (uint64_t)h3 + st->pad[3] + (f >> 32); store32_le(tag + 12, (uint32_t)f);

    wipe(st, sizeof *st);
}

static void poly1305_compute(uint8_t tag[16], const uint8_t key[32], const uint8_t *m, size_t n)
{
    poly1305_t st;
    size_t full = n / 16;

    poly1305_init(&st, key);
    if (full)
        poly1305_blocks(&st, m, full, 1u << 24);
    n -= full * 16;
    if (n) {
        uint8_t last[16];
        memset(last, 0, sizeof last);
        memcpy(last, m + full * 16, n);
        last[n] = 1;
        poly1305_blocks(&st, last, 1, 0);
    }
    poly1305_finish(&st, tag);
}

/* ------------------------------------------------------------------------- */
/* Suites 0/1: Salsa20/12 + Poly1305 (§4.4)                                  */
/* ------------------------------------------------------------------------- */

#define PKT_MIN_LEN 28
#define PKT_ENVELOPE 27 /* verb byte: start of the encrypted/MACed part */
#define PKT_MAC 19      /* 8-byte MAC field */

/* §4.4.1: mangle key with the packet header and its total length; set up the
   Salsa20/12 stream (nonce = packet ID, counter 0) and draw the Poly1305 key from the
   first 32 bytes of block 0. On return the stream is positioned at block 1. */
static void salsa_packet_setup(salsa_t *st, uint8_t otk[32], const uint8_t key[32],
                               const uint8_t *pkt, size_t len)
{
    uint8_t mk[32];
    uint8_t block0[64];
    int i;

    for (i = 0; i < 18; i++)
        mk[i] = key[i] ^ pkt[i];
    mk[18] = key[18] ^ (pkt[18] & 0xF8);
    mk[19] = key[19] ^ (uint8_t)(len & 0xFF);
    mk[20] = key[20] ^ (uint8_t)((len >> 8) & 0xFF);
    memcpy(mk + 21, key + 21, 11);

    salsa_init(st, mk, pkt, 12, 0);
    salsa_block(st, block0);
    memcpy(otk, block0, 32);
    wipe(mk, sizeof mk);
    wipe(block0, sizeof block0);
}

/* ------------------------------------------------------------------------- */
/* Argument helpers                                                          */
/* ------------------------------------------------------------------------- */

static int check_len(const Py_buffer *b, Py_ssize_t want, const char *what)
{
    if (b->len != want) {
        PyErr_Format(PyExc_ValueError, "%s must be %zd bytes, got %zd", what, want, b->len);
        return 0;
    }
    return 1;
}

static int check_packet(const Py_buffer *b)
{
    if (b->len < PKT_MIN_LEN) {
        PyErr_Format(PyExc_ValueError, "packet too short: %zd bytes (minimum %d)", b->len,
                     PKT_MIN_LEN);
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------- */
/* Module functions                                                          */
/* ------------------------------------------------------------------------- */

PyDoc_STRVAR(salsa20_xor_doc,
"salsa20_xor(key, nonce, data, rounds, first_block=0) -> bytes\n\n"
"XOR data with the Salsa20/rounds keystream (rounds 8, 12 or 20; 32-byte key,\n"
"8-byte nonce) starting at block first_block (taken modulo 2**64).");

static PyObject *sp_salsa20_xor(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"key", "nonce", "data", "rounds", "first_block", NULL};
    Py_buffer key = {0}, nonce = {0}, data = {0};
    int rounds;
    PyObject *first_obj = NULL;
    unsigned long long first = 0;
    PyObject *out = NULL;
    salsa_t st;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*y*i|O:salsa20_xor", kwlist, &key,
                                     &nonce, &data, &rounds, &first_obj))
        return NULL;
    if (!check_len(&key, 32, "key") || !check_len(&nonce, 8, "nonce"))
        goto done;
    if (rounds != 8 && rounds != 12 && rounds != 20) {
        PyErr_Format(PyExc_ValueError, "unsupported Salsa20 round count %d", rounds);
        goto done;
    }
    if (first_obj != NULL) {
        /* any int (or __index__), reduced modulo 2**64 like the pure reference */
        first = PyLong_AsUnsignedLongLongMask(first_obj);
        if (first == (unsigned long long)-1 && PyErr_Occurred())
            goto done;
    }

    /* a fresh object: PyBytes_FromStringAndSize with a source may hand back the
       interpreter's shared one-byte bytes singletons, which must not be written to */
    out = PyBytes_FromStringAndSize(NULL, data.len);
    if (out == NULL)
        goto done;
    if (data.len)
        memcpy(PyBytes_AS_STRING(out), data.buf, (size_t)data.len);
    salsa_init(&st, (const uint8_t *)key.buf, (const uint8_t *)nonce.buf, rounds,
               (uint64_t)first);
    salsa_xor(&st, (uint8_t *)PyBytes_AS_STRING(out), (size_t)data.len);
    wipe(&st, sizeof st);

done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&nonce);
    PyBuffer_Release(&data);
    return out;
}

PyDoc_STRVAR(poly1305_doc,
"poly1305(key, message) -> bytes\n\n16-byte Poly1305 tag (RFC 8439) with a 32-byte one-time key.");

static PyObject *sp_poly1305(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"key", "message", NULL};
    Py_buffer key = {0}, msg = {0};
    uint8_t tag[16];
    PyObject *out = NULL;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*:poly1305", kwlist, &key, &msg))
        return NULL;
    if (check_len(&key, 32, "key")) {
        poly1305_compute(tag, (const uint8_t *)key.buf, (const uint8_t *)msg.buf,
                         (size_t)msg.len);
        out = PyBytes_FromStringAndSize((const char *)tag, 16);
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&msg);
    return out;
}

/* RFC 1071: the one's complement sum of p[0:n] as big-endian 16-bit words (an odd
   last byte padded with zero) plus acc, folded to 16 bits, not complemented. The sum
   does not depend on byte order (RFC 1071 2.(B)): native 64-bit words are added in
   32-bit halves, folded, and swapped on a little-endian machine. inet_sum() below,
   and the data plane's checksums (_dp_gro.h, _dp_tso.h). */
static uint32_t inet_sum_raw(const uint8_t *p, size_t n, uint64_t acc)
{
    static const uint16_t one = 1;
    uint64_t sum = 0, w;
    size_t i;
    for (i = 0; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        sum += (w & 0xFFFFFFFFu) + (w >> 32);
    }
    if (i < n) {
        uint8_t tail[8] = {0};
        memcpy(tail, p + i, n - i);
        memcpy(&w, tail, 8);
        sum += (w & 0xFFFFFFFFu) + (w >> 32);
    }
    while (sum >> 16)
        sum = (sum & 0xFFFFu) + (sum >> 16);
    if (*(const uint8_t *)&one == 1) /* little-endian (folded at compile time) */
        sum = ((sum & 0xFFu) << 8) | (sum >> 8);
    sum += acc;
    while (sum >> 16)
        sum = (sum & 0xFFFFu) + (sum >> 16);
    return (uint32_t)sum;
}

PyDoc_STRVAR(inet_sum_doc,
"inet_sum(data, initial=0) -> int\n\nThe Internet checksum's one's complement sum (RFC 1071) of\n"
"data as big-endian 16-bit words (an odd last byte padded with zero), plus initial,\n"
"folded to 16 bits, not complemented.");

static PyObject *sp_inet_sum(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer data = {0};
    unsigned long long acc = 0;
    uint32_t sum;
    (void)self;

    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "inet_sum(data, initial=0)");
        return NULL;
    }
    if (nargs == 2) {
        acc = PyLong_AsUnsignedLongLong(args[1]);
        if (acc == (unsigned long long)-1 && PyErr_Occurred())
            return NULL;
        if (acc > 0xFFFFFFFFull) {
            PyErr_SetString(PyExc_ValueError, "initial must be below 2**32");
            return NULL;
        }
    }
    if (PyObject_GetBuffer(args[0], &data, PyBUF_SIMPLE) < 0)
        return NULL;
    sum = inet_sum_raw((const uint8_t *)data.buf, (size_t)data.len, acc);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong((unsigned long)sum);
}

/* §2.4 memory-hard hash, steps 2-5. Runs without the GIL. */
#define MHH_MEMORY 2097152u
#define MHH_BLOCKS (MHH_MEMORY / 64u) /* 32,768 */
#define MHH_SLOTS (MHH_MEMORY / 8u)   /* 262,144 */
#define MHH_ROUNDS (MHH_SLOTS / 2u)   /* 131,072 */

static void memory_hard_hash_impl(uint8_t d[64], uint8_t *mem)
{
    salsa_t st;
    uint8_t ks[256];
    uint32_t b, j;

    /* one Salsa20/20 stream for both phases: key D[0:32], nonce D[32:40] */
    salsa_init(&st, d, d + 32, 20, 0);

    /* fill: block b = XOR of keystream blocks 0..b (32,768 is a multiple of 4) */
    for (b = 0; b < MHH_BLOCKS; b += 4) {
        uint8_t *blk = mem + (size_t)b * 64;
        salsa_block4(&st, blk);
        if (b)
            xor_bytes(blk, blk - 64, 64);
        xor_bytes(blk + 64, blk, 64);
        xor_bytes(blk + 128, blk + 64, 64);
        xor_bytes(blk + 192, blk + 128, 64);
    }

    /* mix: the keystream continues at block 32,768; one block per round */
    for (j = 0; j < MHH_ROUNDS; j++) {
        const uint8_t *pair = mem + (size_t)j * 16;
        unsigned idx1 = (unsigned)(load64_be(pair) % 8u);
        size_t idx2 = (size_t)(load64_be(pair + 8) % MHH_SLOTS);
        uint8_t tmp[8];
        memcpy(tmp, mem + idx2 * 8, 8);
        memcpy(mem + idx2 * 8, d + idx1 * 8, 8);
        memcpy(d + idx1 * 8, tmp, 8);
        if ((j & 3) == 0)
            salsa_block4(&st, ks); /* 131,072 rounds: a multiple of 4 */
        xor_bytes(d, ks + 64 * (j & 3), 64);
    }
    wipe(&st, sizeof st);
    wipe(ks, sizeof ks);
}

PyDoc_STRVAR(memory_hard_hash_doc,
"memory_hard_hash(digest) -> bytes\n\n"
"Steps 2-5 of PROTOCOL-CORE §2.4 given digest = SHA-512(public key) (64 bytes);\n"
"returns the final 64-byte D. Releases the GIL.");

static PyObject *sp_memory_hard_hash(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"digest", NULL};
    Py_buffer digest = {0};
    uint8_t d[64];
    uint8_t *mem;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*:memory_hard_hash", kwlist, &digest))
        return NULL;
    if (!check_len(&digest, 64, "digest")) {
        PyBuffer_Release(&digest);
        return NULL;
    }
    memcpy(d, digest.buf, 64);
    PyBuffer_Release(&digest);

    mem = (uint8_t *)pages_alloc(MHH_MEMORY);
    if (mem == NULL)
        return PyErr_NoMemory();
    Py_BEGIN_ALLOW_THREADS
    memory_hard_hash_impl(d, mem);
    Py_END_ALLOW_THREADS
    pages_free(mem, MHH_MEMORY);
    return PyBytes_FromStringAndSize((const char *)d, 64);
}

/* Suites 0/1 armor of p[0:len] in place (header final): MAC at [19:27], [27:] encrypted
   when encrypt. */
static void salsa_armor_buf(const uint8_t key[32], uint8_t *p, size_t len, int encrypt)
{
    salsa_t st;
    uint8_t otk[32], tag[16];

    salsa_packet_setup(&st, otk, key, p, len);
    if (encrypt)
        salsa_xor(&st, p + PKT_ENVELOPE, len - PKT_ENVELOPE);
    poly1305_compute(tag, otk, p + PKT_ENVELOPE, len - PKT_ENVELOPE);
    memcpy(p + PKT_MAC, tag, 8);
    wipe(&st, sizeof st);
    wipe(otk, sizeof otk);
}

/* Suites 0/1 dearmor in place; 0 (p untouched) when the MAC does not match. */
static int salsa_dearmor_buf(const uint8_t key[32], uint8_t *p, size_t len, int decrypt)
{
    salsa_t st;
    uint8_t otk[32], tag[16];
    int ok;

    salsa_packet_setup(&st, otk, key, p, len);
    poly1305_compute(tag, otk, p + PKT_ENVELOPE, len - PKT_ENVELOPE);
    ok = ct_equal(tag, p + PKT_MAC, 8);
    if (ok && decrypt)
        salsa_xor(&st, p + PKT_ENVELOPE, len - PKT_ENVELOPE);
    wipe(&st, sizeof st);
    wipe(otk, sizeof otk);
    return ok;
}

PyDoc_STRVAR(armor_salsa_doc,
"armor_salsa(key, packet, encrypt) -> None\n\n"
"Suites 0/1 armor in place (§4.4.2) with the 32-byte Salsa key. Writes the 8-byte\n"
"MAC at [19:27]; encrypts [27:] when encrypt is true.");

static PyObject *sp_armor_salsa(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"key", "packet", "encrypt", NULL};
    Py_buffer key = {0}, pkt = {0};
    int encrypt;
    PyObject *ret = NULL;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*w*p:armor_salsa", kwlist, &key, &pkt,
                                     &encrypt))
        return NULL;
    if (check_len(&key, 32, "key") && check_packet(&pkt)) {
        salsa_armor_buf((const uint8_t *)key.buf, (uint8_t *)pkt.buf, (size_t)pkt.len, encrypt);
        ret = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&pkt);
    return ret;
}

PyDoc_STRVAR(dearmor_salsa_doc,
"dearmor_salsa(key, packet, decrypt) -> bool\n\n"
"Suites 0/1 dearmor in place (§4.4.3); False (packet untouched) on MAC mismatch.");

static PyObject *sp_dearmor_salsa(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"key", "packet", "decrypt", NULL};
    Py_buffer key = {0}, pkt = {0};
    int decrypt;
    PyObject *ret = NULL;
    (void)self;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*w*p:dearmor_salsa", kwlist, &key, &pkt,
                                     &decrypt))
        return NULL;
    if (check_len(&key, 32, "key") && check_packet(&pkt)) {
        int ok = salsa_dearmor_buf((const uint8_t *)key.buf, (uint8_t *)pkt.buf,
                                   (size_t)pkt.len, decrypt);
        ret = Py_NewRef(ok ? Py_True : Py_False);
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&pkt);
    return ret;
}

/* ------------------------------------------------------------------------- */
/* Suite 3: AES-GMAC-SIV (§4.5) on OpenSSL EVP                               */
/* ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    EVP_CIPHER_CTX *gcm;     /* AES-256-GCM, K0: used as GMAC */
    EVP_CIPHER_CTX *ecb_enc; /* AES-256-ECB encrypt, K1 (no padding) */
    EVP_CIPHER_CTX *ecb_dec; /* AES-256-ECB decrypt, K1 (no padding) */
    EVP_CIPHER_CTX *ctr;     /* AES-256-CTR, K1; IV reset per packet */
    int keyed;
    pthread_mutex_t lock;    /* the contexts: the data plane's reactor thread uses them too */
} AesGmacSivObject;

static int openssl_error(const char *what)
{
    if (PyGILState_Check()) /* not on the data plane's reactor thread */
        PyErr_Format(PyExc_RuntimeError, "OpenSSL %s failed", what);
    return 0;
}

static PyObject *siv_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    AesGmacSivObject *self;
    (void)args;
    (void)kwargs;

    self = (AesGmacSivObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->gcm = EVP_CIPHER_CTX_new();
    self->ecb_enc = EVP_CIPHER_CTX_new();
    self->ecb_dec = EVP_CIPHER_CTX_new();
    self->ctr = EVP_CIPHER_CTX_new();
    self->keyed = 0;
    pthread_mutex_init(&self->lock, NULL);
    if (!self->gcm || !self->ecb_enc || !self->ecb_dec || !self->ctr) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static void siv_dealloc(AesGmacSivObject *self)
{
    EVP_CIPHER_CTX_free(self->gcm);
    EVP_CIPHER_CTX_free(self->ecb_enc);
    EVP_CIPHER_CTX_free(self->ecb_dec);
    EVP_CIPHER_CTX_free(self->ctr);
    pthread_mutex_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int siv_init(AesGmacSivObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"k0", "k1", NULL};
    Py_buffer k0 = {0}, k1 = {0};
    static const uint8_t zero_iv[16] = {0};
    int rc = -1;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*:AesGmacSiv", kwlist, &k0, &k1))
        return -1;
    self->keyed = 0;
    if (!check_len(&k0, 32, "k0") || !check_len(&k1, 32, "k1"))
        goto done;

    if (EVP_EncryptInit_ex(self->gcm, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(self->gcm, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_EncryptInit_ex(self->gcm, NULL, NULL, (const uint8_t *)k0.buf, NULL) != 1) {
        openssl_error("AES-256-GCM init");
        goto done;
    }
    if (EVP_EncryptInit_ex(self->ecb_enc, EVP_aes_256_ecb(), NULL, (const uint8_t *)k1.buf,
                           NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(self->ecb_enc, 0) != 1 ||
        EVP_DecryptInit_ex(self->ecb_dec, EVP_aes_256_ecb(), NULL, (const uint8_t *)k1.buf,
                           NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(self->ecb_dec, 0) != 1) {
        openssl_error("AES-256-ECB init");
        goto done;
    }
    if (EVP_EncryptInit_ex(self->ctr, EVP_aes_256_ctr(), NULL, (const uint8_t *)k1.buf,
                           zero_iv) != 1) {
        openssl_error("AES-256-CTR init");
        goto done;
    }
    self->keyed = 1;
    rc = 0;
done:
    PyBuffer_Release(&k0);
    PyBuffer_Release(&k1);
    return rc;
}

/* G = GMAC_K0(nonce8 || 00000000, A11 zero-padded to 16, P), computed as the tag of
   AES-256-GCM with empty plaintext and AAD = A_padded || P (§4.5.2). Returns the
   64-bit folded MAC G[0:8] ^ G[8:16] in mac8. */
static int siv_gmac(AesGmacSivObject *self, const uint8_t nonce8[8], const uint8_t a16[16],
                    const uint8_t *p, size_t plen, uint8_t mac8[8])
{
    uint8_t iv[12], g[16];
    int outl, i;

    memcpy(iv, nonce8, 8);
    memset(iv + 8, 0, 4);
    if (EVP_EncryptInit_ex(self->gcm, NULL, NULL, NULL, iv) != 1 ||
        EVP_EncryptUpdate(self->gcm, NULL, &outl, a16, 16) != 1)
        return openssl_error("GMAC");
    while (plen > 0) {
        /* EVP lengths are int; feed huge buffers in chunks (AAD is streamable) */
        int chunk = plen > 0x40000000u ? 0x40000000 : (int)plen;
        if (EVP_EncryptUpdate(self->gcm, NULL, &outl, p, chunk) != 1)
            return openssl_error("GMAC");
        p += chunk;
        plen -= (size_t)chunk;
    }
    if (EVP_EncryptFinal_ex(self->gcm, g, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(self->gcm, EVP_CTRL_GCM_GET_TAG, 16, g) != 1)
        return openssl_error("GMAC");
    for (i = 0; i < 8; i++)
        mac8[i] = g[i] ^ g[i + 8];
    return 1;
}

/* out = AES-256-CTR_K1(C0 = s with s[12] &= 0x7F, in); in may equal out. */
static int siv_ctr(AesGmacSivObject *self, const uint8_t s[16], const uint8_t *in, uint8_t *out,
                   size_t n)
{
    uint8_t c0[16];
    int outl;

    memcpy(c0, s, 16);
    c0[12] &= 0x7F;
    if (EVP_EncryptInit_ex(self->ctr, NULL, NULL, NULL, c0) != 1)
        return openssl_error("AES-CTR");
    while (n > 0) {
        int chunk = n > 0x40000000u ? 0x40000000 : (int)n;
        if (EVP_EncryptUpdate(self->ctr, out, &outl, in, chunk) != 1)
            return openssl_error("AES-CTR");
        in += chunk;
        out += chunk;
        n -= (size_t)chunk;
    }
    return 1;
}

/* One AES-256-ECB block with K1 (enc selects the encrypt or decrypt context). */
static int siv_ecb(EVP_CIPHER_CTX *ctx, int enc, const uint8_t in[16], uint8_t out[16])
{
    int outl = 0;
    int rc = enc ? EVP_EncryptUpdate(ctx, out, &outl, in, 16)
                 : EVP_DecryptUpdate(ctx, out, &outl, in, 16);
    if (rc != 1 || outl != 16)
        return openssl_error("AES-ECB");
    return 1;
}

static int siv_ready(AesGmacSivObject *self)
{
    if (!self->keyed) {
        PyErr_SetString(PyExc_RuntimeError, "AesGmacSiv object is not initialized");
        return 0;
    }
    return 1;
}

static char *siv_kwlist[] = {"packet", NULL};

/* Armor p[0:len] in place (len >= 28, header final): [0:8] and [19:27] get the tag. */
static int siv_armor_buf_unlocked(AesGmacSivObject *self, uint8_t *p, size_t len)
{
    size_t plen = len - PKT_ENVELOPE;
    uint8_t a16[16], t[16], s[16];

    /* A = dest || source || flags, as is (sender side), zero-padded */
    memcpy(a16, p + 8, 11);
    memset(a16 + 11, 0, 5);
    memcpy(t, p, 8); /* N */
    if (!siv_gmac(self, p, a16, p + PKT_ENVELOPE, plen, t + 8) ||
        !siv_ecb(self->ecb_enc, 1, t, s) ||
        !siv_ctr(self, s, p + PKT_ENVELOPE, p + PKT_ENVELOPE, plen))
        return 0;
    memcpy(p, s, 8);
    memcpy(p + PKT_MAC, s + 8, 8);
    return 1;
}

/* Decrypt and authenticate pkt[0:len]: the plaintext of pkt[27:] goes to plain (len - 27
   bytes, may not overlap pkt). 1: the tag holds; 0: it does not; -1: OpenSSL failed
   (exception set). */
static int siv_open_unlocked(AesGmacSivObject *self, const uint8_t *p, size_t len,
                             uint8_t *plain)
{
    size_t plen = len - PKT_ENVELOPE;
    uint8_t a16[16], s[16], t[16], mac8[8];

    memcpy(s, p, 8);
    memcpy(s + 8, p + PKT_MAC, 8);
    memcpy(a16, p + 8, 11);
    a16[10] &= 0xF8; /* receiver masks the hop count */
    memset(a16 + 11, 0, 5);
    if (!siv_ctr(self, s, p + PKT_ENVELOPE, plain, plen) || !siv_ecb(self->ecb_dec, 0, s, t) ||
        !siv_gmac(self, t, a16, plain, plen, mac8))
        return -1;
    return ct_equal(mac8, t + 8, 8);
}

static int siv_armor_buf(AesGmacSivObject *self, uint8_t *p, size_t len)
{
    int r;
    pthread_mutex_lock(&self->lock);
    r = siv_armor_buf_unlocked(self, p, len);
    pthread_mutex_unlock(&self->lock);
    return r;
}

static int siv_open_into(AesGmacSivObject *self, const uint8_t *p, size_t len, uint8_t *plain)
{
    int r;
    pthread_mutex_lock(&self->lock);
    r = siv_open_unlocked(self, p, len, plain);
    pthread_mutex_unlock(&self->lock);
    return r;
}

static PyObject *siv_armor(AesGmacSivObject *self, PyObject *args, PyObject *kwargs)
{
    Py_buffer pkt = {0};
    PyObject *ret = NULL;

    if (!siv_ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "w*:armor", siv_kwlist, &pkt))
        return NULL;
    if (check_packet(&pkt) && siv_armor_buf(self, (uint8_t *)pkt.buf, (size_t)pkt.len))
        ret = Py_NewRef(Py_None);
    PyBuffer_Release(&pkt);
    return ret;
}

#define SIV_STACK_BUF 10240

static PyObject *siv_dearmor(AesGmacSivObject *self, PyObject *args, PyObject *kwargs)
{
    Py_buffer pkt = {0};
    PyObject *ret = NULL;

    if (!siv_ready(self) ||
        !PyArg_ParseTupleAndKeywords(args, kwargs, "w*:dearmor", siv_kwlist, &pkt))
        return NULL;
    if (check_packet(&pkt)) {
        uint8_t *p = (uint8_t *)pkt.buf;
        size_t plen = (size_t)pkt.len - PKT_ENVELOPE;
        uint8_t stackbuf[SIV_STACK_BUF];
        uint8_t *plain = stackbuf;
        int ok;

        if (plen > sizeof stackbuf) {
            plain = (uint8_t *)PyMem_Malloc(plen);
            if (plain == NULL) {
                PyErr_NoMemory();
                goto done;
            }
        }
        ok = siv_open_into(self, p, (size_t)pkt.len, plain);
        if (ok == 1)
            memcpy(p + PKT_ENVELOPE, plain, plen);
        if (ok >= 0)
            ret = Py_NewRef(ok ? Py_True : Py_False);
        if (plain != stackbuf)
            PyMem_Free(plain);
    }
done:
    PyBuffer_Release(&pkt);
    return ret;
}

static PyMethodDef siv_methods[] = {
    {"armor", (PyCFunction)(void (*)(void))siv_armor, METH_VARARGS | METH_KEYWORDS,
     "armor(packet) -> None\n\nEncrypt in place (§4.5.3): [0:8] and [19:27] get the tag, "
     "[27:] the ciphertext."},
    {"dearmor", (PyCFunction)(void (*)(void))siv_dearmor, METH_VARARGS | METH_KEYWORDS,
     "dearmor(packet) -> bool\n\nDecrypt in place (§4.5.4); False (packet untouched) if the "
     "tag fails."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AesGmacSivType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ztone._speedups.AesGmacSiv",
    .tp_doc = PyDoc_STR("AesGmacSiv(k0, k1)\n\nAES-256-GMAC-SIV (suite 3, §4.5) keyed with K0 "
                        "(GMAC) and K1 (SIV/CTR), 32 bytes each."),
    .tp_basicsize = sizeof(AesGmacSivObject),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = siv_new,
    .tp_init = (initproc)siv_init,
    .tp_dealloc = (destructor)siv_dealloc,
    .tp_methods = siv_methods,
};

/* ------------------------------------------------------------------------- */
/* The per-peer fast hop: one FRAME packet built, armored and cut, or one    */
/* datagram authenticated and opened, in a single call (§5.2, §4, §5.6)      */
/* ------------------------------------------------------------------------- */

#define PKT_MAX_LEN 10024    /* MAX_PACKET_LENGTH */
#define FRAG_HEADER 16
#define FRAG_MAX 7
#define FRAME_HEADER_LEN 36  /* packet id, dest, source, flags, MAC, verb, network id */
#define PHYSMTU_MIN 64
#define PHYSMTU_MAX 10324

PyDoc_STRVAR(seal_frame_doc,
"seal_frame(template, packet_id, ethertype, payload, mtu, siv, salsa_key) -> list[bytes]\n\n"
"The datagrams of one FRAME: packet_id || template (28 bytes: dest, source, flags,\n"
"zero MAC, verb, network id) || ethertype || payload, marked fragmented when longer\n"
"than mtu, armored with siv (AES-GMAC-SIV, suite 3) or, when siv is None, Salsa20/12\n"
"with salsa_key (suite 1), then cut as ztone.node.wire.fragment.split cuts it.");

static PyObject *sp_seal_frame(PyObject *self, PyObject *args)
{
    Py_buffer tmpl = {0}, pid = {0}, payload = {0}, skey = {0};
    int ethertype, mtu;
    PyObject *siv_obj, *ret = NULL;
    uint8_t buf[PKT_MAX_LEN];
    size_t n, per, total, size, chunk, offset, k, max_len;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*y*iy*iOy*:seal_frame", &tmpl, &pid, &ethertype, &payload,
                          &mtu, &siv_obj, &skey))
        return NULL;
    if (!check_len(&tmpl, FRAME_HEADER_LEN - 8, "template") || !check_len(&pid, 8, "packet_id"))
        goto done;
    if (siv_obj != Py_None) {
        if (!PyObject_TypeCheck(siv_obj, &AesGmacSivType)) {
            PyErr_SetString(PyExc_TypeError, "siv must be an AesGmacSiv or None");
            goto done;
        }
        if (!siv_ready((AesGmacSivObject *)siv_obj))
            goto done;
    } else if (!check_len(&skey, 32, "salsa_key")) {
        goto done;
    }
    if (mtu < PHYSMTU_MIN || mtu > PHYSMTU_MAX || ethertype < 0 || ethertype > 0xFFFF) {
        PyErr_SetString(PyExc_ValueError, "mtu or ethertype out of range");
        goto done;
    }
    n = FRAME_HEADER_LEN + 2 + (size_t)payload.len;
    max_len = (size_t)mtu + (FRAG_MAX - 1) * ((size_t)mtu - FRAG_HEADER);
    if (max_len > PKT_MAX_LEN)
        max_len = PKT_MAX_LEN;
    if (n > max_len) {
        PyErr_Format(PyExc_ValueError, "packet of %zu bytes cannot be sent with MTU %d", n, mtu);
        goto done;
    }
    memcpy(buf, pid.buf, 8);
    memcpy(buf + 8, tmpl.buf, FRAME_HEADER_LEN - 8);
    buf[FRAME_HEADER_LEN] = (uint8_t)(ethertype >> 8);
    buf[FRAME_HEADER_LEN + 1] = (uint8_t)ethertype;
    memcpy(buf + FRAME_HEADER_LEN + 2, payload.buf, (size_t)payload.len);
    if (n > (size_t)mtu)
        buf[18] |= 0x40;
    else
        buf[18] &= (uint8_t)~0x40;
    if (siv_obj != Py_None) {
        buf[18] = (uint8_t)((buf[18] & 0x47) | (3 << 3));
        if (!siv_armor_buf((AesGmacSivObject *)siv_obj, buf, n))
            goto done;
    } else {
        buf[18] = (uint8_t)((buf[18] & 0x47) | (1 << 3) | 0x80);
        salsa_armor_buf((const uint8_t *)skey.buf, buf, n, 1);
    }
    if (n <= (size_t)mtu) {
        PyObject *one = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)n);
        if (one == NULL)
            goto done;
        ret = PyList_New(1);
        if (ret == NULL) {
            Py_DECREF(one);
            goto done;
        }
        PyList_SET_ITEM(ret, 0, one);
        goto done;
    }
    /* every piece as long as the head, the last fragment excepted (fragment.split) */
    per = (size_t)mtu - FRAG_HEADER;
    total = (n - (size_t)mtu + per - 1) / per + 1;
    size = (n + FRAG_HEADER * (total - 1) + total - 1) / total;
    chunk = size - FRAG_HEADER;
    ret = PyList_New((Py_ssize_t)total);
    if (ret == NULL)
        goto done;
    {
        PyObject *head = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)size);
        if (head == NULL) {
            Py_CLEAR(ret);
            goto done;
        }
        PyList_SET_ITEM(ret, 0, head);
    }
    offset = size;
    for (k = 1; k < total; k++) {
        size_t take = n - offset < chunk ? n - offset : chunk;
        PyObject *piece = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(FRAG_HEADER + take));
        uint8_t *q;
        if (piece == NULL) {
            Py_CLEAR(ret);
            goto done;
        }
        q = (uint8_t *)PyBytes_AS_STRING(piece);
        memcpy(q, buf, 13);
        q[13] = 0xFF;
        q[14] = (uint8_t)((total << 4) | k);
        q[15] = 0;
        memcpy(q + FRAG_HEADER, buf + offset, take);
        PyList_SET_ITEM(ret, (Py_ssize_t)k, piece);
        offset += take;
    }
done:
    PyBuffer_Release(&tmpl);
    PyBuffer_Release(&pid);
    PyBuffer_Release(&payload);
    PyBuffer_Release(&skey);
    return ret;
}

PyDoc_STRVAR(open_packet_doc,
"open_packet(data, destination, siv, salsa_key, assembled=False) -> bytearray | None\n\n"
"A copy of the whole packet in data with [27:] authenticated and decrypted, when data\n"
"is one unfragmented packet (28..10024 bytes) whose destination (data[8:13]) equals\n"
"destination (5 bytes), with 0 hops and cipher suite 3 (needs siv) or 1 (Salsa20/12\n"
"with salsa_key), and its MAC holds. With assembled true, data is a packet put back\n"
"together from its fragments: its fragmented flag may then be set (the MAC covers it\n"
"as sent). None otherwise (data is never changed): the caller takes the general path.");

static PyObject *sp_open_packet(PyObject *self, PyObject *args)
{
    Py_buffer data = {0}, dest = {0}, skey = {0};
    PyObject *siv_obj, *ret = NULL;
    const uint8_t *p;
    size_t n;
    int suite, ok, assembled = 0;
    uint8_t flags;
    (void)self;

    if (!PyArg_ParseTuple(args, "y*y*Oy*|p:open_packet", &data, &dest, &siv_obj, &skey,
                          &assembled))
        return NULL;
    if (!check_len(&dest, 5, "destination"))
        goto done;
    p = (const uint8_t *)data.buf;
    n = (size_t)data.len;
    if (n < PKT_MIN_LEN || n > PKT_MAX_LEN || memcmp(p + 8, dest.buf, 5) != 0)
        goto none;
    flags = p[18];
    /* relayed, or a head still waiting for its fragments: the general path */
    if (flags & (assembled ? 0x07 : 0x47))
        goto none;
    suite = (flags >> 3) & 7;
    if (suite == 3) {
        PyObject *out;
        if (siv_obj == Py_None || !PyObject_TypeCheck(siv_obj, &AesGmacSivType))
            goto none;
        if (!siv_ready((AesGmacSivObject *)siv_obj))
            goto done;
        out = PyByteArray_FromStringAndSize((const char *)p, (Py_ssize_t)n);
        if (out == NULL)
            goto done;
        ok = siv_open_into((AesGmacSivObject *)siv_obj, p, n,
                           (uint8_t *)PyByteArray_AS_STRING(out) + PKT_ENVELOPE);
        if (ok == 1) {
            ret = out;
            goto done;
        }
        Py_DECREF(out);
        if (ok < 0)
            goto done;
        goto none;
    }
    if (suite == 1 && skey.len == 32) {
        PyObject *out = PyByteArray_FromStringAndSize((const char *)p, (Py_ssize_t)n);
        if (out == NULL)
            goto done;
        if (salsa_dearmor_buf((const uint8_t *)skey.buf, (uint8_t *)PyByteArray_AS_STRING(out),
                              n, 1)) {
            ret = out;
            goto done;
        }
        Py_DECREF(out);
    }
none:
    ret = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&dest);
    PyBuffer_Release(&skey);
    return ret;
}

/* ------------------------------------------------------------------------- */
/* X25519 and Ed25519 (PROTOCOL-CORE §2.1, §3.1, §3.2) through libcrypto      */
/* ------------------------------------------------------------------------- */

/*
 * Raw 32-byte keys only: X25519 scalars (clamped by OpenSSL, so they are stored
 * unclamped as ZeroTier does), X25519 u-coordinates, Ed25519 seeds and public keys.
 * The ZeroTier-specific parts (SHA-512 of the shared secret, signing SHA-512(m)[0:32]
 * and appending it) stay in ztone.crypto.c25519; these are the bare primitives, the
 * same OpenSSL code `cryptography` calls. Every failure clears OpenSSL's error queue
 * so no stale entry is blamed on a later, unrelated call (hashlib, cryptography).
 * The GIL is released around the curve arithmetic (tens of microseconds); the
 * buffers stay exported, so their sizes cannot change meanwhile.
 */

#define C25519_KEY 32
#define ED25519_SIG 64

static int check_len32(const Py_buffer *b, const char *what)
{
    if (b->len != C25519_KEY) {
        PyErr_Format(PyExc_ValueError, "%s must be 32 bytes", what);
        return 0;
    }
    return 1;
}

/*
 * One remembered private key per curve. A node agrees with every new peer and signs
 * with the same identity key, and making an EVP_PKEY from a raw private key costs a
 * scalar multiplication (OpenSSL derives the public key), so keeping the last one
 * halves an agreement's cost. Only touched with the GIL held; the key itself is
 * shared read-only across threads (reference counted), which OpenSSL allows.
 */
typedef struct {
    int type;
    uint8_t priv[C25519_KEY];
    EVP_PKEY *key;
} KeyCache;

static KeyCache x25519_cache = {EVP_PKEY_X25519, {0}, NULL};
static KeyCache ed25519_cache = {EVP_PKEY_ED25519, {0}, NULL};

/* A new reference to the EVP_PKEY of priv, or NULL (queue cleared). GIL held on entry
   and on return; released while a new key is made. */
static EVP_PKEY *private_key(KeyCache *c, const uint8_t *priv)
{
    EVP_PKEY *k;

    if (c->key != NULL && CRYPTO_memcmp(c->priv, priv, C25519_KEY) == 0 &&
        EVP_PKEY_up_ref(c->key) == 1)
        return c->key;
    Py_BEGIN_ALLOW_THREADS
    k = EVP_PKEY_new_raw_private_key(c->type, NULL, priv, C25519_KEY);
    Py_END_ALLOW_THREADS
    if (k == NULL) {
        ERR_clear_error();
        return NULL;
    }
    if (EVP_PKEY_up_ref(k) == 1) {
        EVP_PKEY_free(c->key); /* NULL is fine; OpenSSL wipes a freed private key */
        memcpy(c->priv, priv, C25519_KEY);
        c->key = k;
    }
    return k;
}

static PyObject *public_of(PyObject *args, KeyCache *cache, const char *fmt, const char *what)
{
    Py_buffer priv = {0};
    uint8_t out[C25519_KEY];
    size_t n = C25519_KEY;
    EVP_PKEY *k;
    int ok;

    if (!PyArg_ParseTuple(args, fmt, &priv))
        return NULL;
    if (!check_len32(&priv, what)) {
        PyBuffer_Release(&priv);
        return NULL;
    }
    k = private_key(cache, (const uint8_t *)priv.buf);
    PyBuffer_Release(&priv);
    ok = k != NULL && EVP_PKEY_get_raw_public_key(k, out, &n) == 1 && n == C25519_KEY;
    EVP_PKEY_free(k);
    if (!ok) {
        ERR_clear_error();
        PyErr_SetString(PyExc_RuntimeError, "libcrypto refused the key (no X25519/Ed25519?)");
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)out, C25519_KEY);
}

PyDoc_STRVAR(x25519_public_doc,
             "x25519_public(private) -> bytes\n\n"
             "The 32-byte X25519 public u-coordinate of a 32-byte (unclamped) scalar.");

static PyObject *sp_x25519_public(PyObject *self, PyObject *args)
{
    return public_of(args, &x25519_cache, "y*:x25519_public", "X25519 private key");
}

PyDoc_STRVAR(ed25519_public_doc,
             "ed25519_public(seed) -> bytes\n\n"
             "The 32-byte Ed25519 public key of a 32-byte seed.");

static PyObject *sp_ed25519_public(PyObject *self, PyObject *args)
{
    return public_of(args, &ed25519_cache, "y*:ed25519_public", "Ed25519 seed");
}

/* 1: out holds the secret; 0: OpenSSL refused (e.g. all-zero result); -1: no memory. */
static int x25519_derive(EVP_PKEY *mine, const uint8_t *pub, uint8_t *out)
{
    EVP_PKEY *theirs = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, C25519_KEY);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(mine, NULL);
    size_t n = C25519_KEY;
    int ok;

    if (theirs == NULL || ctx == NULL)
        ok = -1;
    else
        ok = EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, theirs) == 1 &&
             EVP_PKEY_derive(ctx, out, &n) == 1 && n == C25519_KEY;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(theirs);
    if (ok != 1)
        ERR_clear_error();
    return ok;
}

PyDoc_STRVAR(x25519_doc,
             "x25519(private, peer_public) -> bytes\n\n"
             "The raw 32-byte X25519 shared secret. ValueError when it would be all zero\n"
             "(a low-order peer point), as libcrypto refuses that result.");

static PyObject *sp_x25519(PyObject *self, PyObject *args)
{
    Py_buffer priv = {0}, pub = {0};
    uint8_t out[C25519_KEY];
    PyObject *ret = NULL;
    EVP_PKEY *mine;
    int ok = -1;

    if (!PyArg_ParseTuple(args, "y*y*:x25519", &priv, &pub))
        return NULL;
    if (check_len32(&priv, "X25519 private key") && check_len32(&pub, "X25519 public key")) {
        mine = private_key(&x25519_cache, (const uint8_t *)priv.buf);
        if (mine != NULL) {
            Py_BEGIN_ALLOW_THREADS
            ok = x25519_derive(mine, (const uint8_t *)pub.buf, out);
            Py_END_ALLOW_THREADS
            EVP_PKEY_free(mine);
        }
        if (ok == 1)
            ret = PyBytes_FromStringAndSize((const char *)out, C25519_KEY);
        else if (ok == 0)
            PyErr_SetString(PyExc_ValueError, "X25519 agreement failed (low-order public key)");
        else
            PyErr_SetString(PyExc_RuntimeError, "libcrypto could not make X25519 keys");
    }
    PyBuffer_Release(&pub);
    PyBuffer_Release(&priv);
    return ret;
}

static int ed25519_sign_raw(EVP_PKEY *k, const uint8_t *msg, size_t len, uint8_t *sig)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = ED25519_SIG;
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestSign(ctx, sig, &n, msg, len) == 1 && n == ED25519_SIG;

    EVP_MD_CTX_free(ctx);
    if (!ok)
        ERR_clear_error();
    return ok;
}

PyDoc_STRVAR(ed25519_sign_doc,
             "ed25519_sign(seed, message) -> bytes\n\n"
             "The 64-byte RFC 8032 Ed25519 signature of message by the 32-byte seed.");

static PyObject *sp_ed25519_sign(PyObject *self, PyObject *args)
{
    Py_buffer seed = {0}, msg = {0};
    uint8_t sig[ED25519_SIG];
    PyObject *ret = NULL;
    EVP_PKEY *k;
    int ok = 0;

    if (!PyArg_ParseTuple(args, "y*y*:ed25519_sign", &seed, &msg))
        return NULL;
    if (check_len32(&seed, "Ed25519 seed")) {
        k = private_key(&ed25519_cache, (const uint8_t *)seed.buf);
        if (k != NULL) {
            Py_BEGIN_ALLOW_THREADS
            ok = ed25519_sign_raw(k, (const uint8_t *)msg.buf, (size_t)msg.len, sig);
            Py_END_ALLOW_THREADS
            EVP_PKEY_free(k);
        }
        if (ok)
            ret = PyBytes_FromStringAndSize((const char *)sig, ED25519_SIG);
        else
            PyErr_SetString(PyExc_RuntimeError, "libcrypto could not sign with Ed25519");
    }
    PyBuffer_Release(&msg);
    PyBuffer_Release(&seed);
    return ret;
}

static int ed25519_verify_raw(const uint8_t *pub, const uint8_t *sig, const uint8_t *msg,
                              size_t len)
{
    EVP_PKEY *k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, C25519_KEY);
    EVP_MD_CTX *ctx = k != NULL ? EVP_MD_CTX_new() : NULL;
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) == 1 &&
             EVP_DigestVerify(ctx, sig, ED25519_SIG, msg, len) == 1;

    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(k);
    if (!ok)
        ERR_clear_error();
    return ok;
}

PyDoc_STRVAR(ed25519_verify_doc,
             "ed25519_verify(public, signature, message) -> bool\n\n"
             "True iff signature (64 bytes) is public's (32 bytes) Ed25519 signature of\n"
             "message. Any malformed input is False, never an exception.");

static PyObject *sp_ed25519_verify(PyObject *self, PyObject *args)
{
    Py_buffer pub = {0}, sig = {0}, msg = {0};
    int ok = 0;

    if (!PyArg_ParseTuple(args, "y*y*y*:ed25519_verify", &pub, &sig, &msg))
        return NULL;
    if (pub.len == C25519_KEY && sig.len == ED25519_SIG) {
        Py_BEGIN_ALLOW_THREADS
        ok = ed25519_verify_raw((const uint8_t *)pub.buf, (const uint8_t *)sig.buf,
                                (const uint8_t *)msg.buf, (size_t)msg.len);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&msg);
    PyBuffer_Release(&sig);
    PyBuffer_Release(&pub);
    return Py_NewRef(ok ? Py_True : Py_False);
}

/* ------------------------------------------------------------------------- */
/* Native receive data plane (Linux): Dataplane                              */
/* ------------------------------------------------------------------------- */

/*
 * The steady state's frames without Python: a table of grants (network, peer, path,
 * port fd, allowed ethertypes, key) that the pure core decided on and the service
 * mirrors here, and rx_burst(), which reads a UDP socket until EAGAIN or a budget
 * and writes each datagram that is a granted peer's FRAME (§6.7: one packet to us, 0
 * hops, suite 1 or 3, MAC holds, verb FRAME uncompressed, granted network, payload
 * within the port's MTU, ethertype granted) to the network's port as the general
 * path's DeliverFrame would: [virtio_net_hdr of 10 zeros when the port has one]
 * [our MAC][the member's MAC][ethertype][payload]. Anything else comes back to the
 * caller byte for byte, in arrival order, as (host, port, datagram).
 *
 * Fragments (§5.7) from a granted path wait in a ring of reassembly slots keyed by
 * packet id and path; a set made whole is opened as above, or, when it is not the
 * steady state's, its datagrams as received (head first) go back to the caller, whose
 * reassembler then sees exactly what it would have seen. Sets that never complete
 * are dropped when their slot is reused or older than the timeout, and counted.
 *
 * Activity per grant (datagrams, packets, bytes, last receive time) is kept for the
 * core to drain (drain()).
 */
#ifdef __linux__
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#define DP_MAX_ETHERTYPES 8
#define DP_VLEN 16
#define DP_RXBUF 65536
#define DP_PIECES 7
#define DP_HEADROOM 32
#define DP_FRAGMENT_HEADER 16
#define DP_SLOT_BYTES (PKT_MAX_LEN + DP_PIECES * DP_FRAGMENT_HEADER)
#define DP_TX_VLEN 64
#define DP_FRAME_BUF (10 + 14 + 65535) /* a virtio_net_hdr, a 64 KiB super-packet */

#include "_dp_gro.h"

typedef struct {
    int family; /* AF_INET or AF_INET6 */
    uint16_t port;
    uint8_t ip[16];
} dp_addr;

typedef struct {
    uint64_t nwid, peer;
    int sock_id;
    dp_addr remote;
    int tap_fd, vnet, mtu;
    uint8_t hdr[14]; /* destination (our MAC), source (the member's MAC), 0, 0 */
    int all_ethertypes, n_ethertypes;
    uint16_t ethertypes[DP_MAX_ETHERTYPES];
    int64_t expires;
    PyObject *siv; /* AesGmacSiv or NULL */
    uint8_t salsa[32];
    uint64_t datagrams, packets, bytes;
    int64_t last_rx;
} dp_grant;

typedef struct {
    int used;
    uint64_t packet_id;
    int sock_id;
    dp_addr remote;
    int64_t created;
    int total; /* 0 until a fragment says */
    unsigned have;
    uint16_t off[DP_PIECES], len[DP_PIECES]; /* raw datagrams in arena */
    size_t fill;
    uint8_t *arena;
} dp_slot;

/* A send grant: see the send side's comment below. */
struct dp_send {
    uint64_t nwid, peer;
    uint8_t dst[6], src[6];
    int sock_fd, sock_id;
    dp_addr remote;
    struct sockaddr_storage to;
    socklen_t tolen;
    uint8_t template[FRAME_HEADER_LEN - 8];
    PyObject *siv; /* suite 3 when set, else suite 1 */
    uint8_t salsa[32];
    int all_ethertypes, n_ethertypes;
    uint16_t ethertypes[DP_MAX_ETHERTYPES];
    int mtu, physmtu;
    int64_t expires;
    uint64_t datagrams, packets, bytes;
    int64_t last_tx;
};

typedef struct {
    PyObject_HEAD
    uint8_t address[5];
    dp_grant *grants;
    int n_grants, max_grants;
    dp_slot *slots;
    int n_slots, next_slot;
    int64_t reasm_timeout;
    uint8_t *rxbuf;     /* DP_VLEN x DP_RXBUF */
    uint8_t *plain;     /* DP_HEADROOM + PKT_MAX_LEN */
    uint8_t *whole;     /* PKT_MAX_LEN: a set made whole */
    uint8_t *scratch;   /* PKT_MAX_LEN: suite 1 dearmors a copy in place */
    /* counters */
    uint64_t delivered, passed, reasm_dropped, reasm_evicted, reasm_expired, tap_errors,
        read_errors;
    /* send side (tx_burst) */
    struct dp_send *sends;
    int n_sends;
    uint8_t *frame;  /* one read from a port: DP_FRAME_BUF */
    uint8_t *out;    /* DP_TX_VLEN datagrams of PHYSMTU_MAX bytes waiting for sendmmsg */
    size_t out_len[DP_TX_VLEN];
    const struct sockaddr_storage *out_to[DP_TX_VLEN];
    socklen_t out_tolen[DP_TX_VLEN];
    int out_fd, n_out;
    uint64_t sent, given_back, send_errors;
    int gso_off;           /* the kernel refused UDP GSO: datagrams go one by one */
    uint64_t gso_runs, gso_refused;
    dp_gro gro; /* the run of TCP segments being merged (_dp_gro.h) */
    pthread_mutex_t lock;    /* the tables, while the reactor runs (_dp_reactor.h) */
    struct dp_reactor *rt;   /* the reactor thread's state, NULL while it does not run */
} DataplaneObject;

static void dp_rt_stop(DataplaneObject *self);
static int dp_rt_pass(DataplaneObject *self, const dp_addr *from, const uint8_t *p, size_t n);

static void dp_clear_grants(DataplaneObject *self)
{
    int i;
    for (i = 0; i < self->n_grants; i++)
        Py_CLEAR(self->grants[i].siv);
    self->n_grants = 0;
}

static void dp_dealloc(DataplaneObject *self)
{
    int i;
    dp_rt_stop(self);
    if (self->grants != NULL) {
        dp_clear_grants(self);
        wipe(self->grants, sizeof(dp_grant) * (size_t)self->max_grants);
        PyMem_Free(self->grants);
    }
    if (self->slots != NULL) {
        for (i = 0; i < self->n_slots; i++)
            PyMem_RawFree(self->slots[i].arena);
        PyMem_Free(self->slots);
    }
    if (self->sends != NULL) {
        for (i = 0; i < self->n_sends; i++)
            Py_CLEAR(self->sends[i].siv);
        wipe(self->sends, sizeof(struct dp_send) * (size_t)self->max_grants);
        PyMem_Free(self->sends);
    }
    PyMem_Free(self->frame);
    PyMem_Free(self->out);
    if (self->gro.buf != NULL)
        wipe(self->gro.buf, DP_GRO_BUF);
    PyMem_Free(self->gro.buf);
    PyMem_Free(self->rxbuf);
    if (self->plain != NULL)
        wipe(self->plain, DP_HEADROOM + PKT_MAX_LEN);
    PyMem_Free(self->plain);
    PyMem_Free(self->whole);
    if (self->scratch != NULL)
        wipe(self->scratch, PKT_MAX_LEN);
    PyMem_Free(self->scratch);
    if (self->grants != NULL)
        pthread_mutex_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int dp_init(DataplaneObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"address", "max_grants", "reassembly_slots", "reassembly_timeout",
                             NULL};
    Py_buffer addr = {0};
    int max_grants, n_slots;
    long long timeout;

    if (self->grants != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Dataplane is already initialized");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*iiL:Dataplane", kwlist, &addr,
                                     &max_grants, &n_slots, &timeout))
        return -1;
    if (!check_len(&addr, 5, "address")) {
        PyBuffer_Release(&addr);
        return -1;
    }
    memcpy(self->address, addr.buf, 5);
    PyBuffer_Release(&addr);
    if (max_grants < 1 || max_grants > 65536 || n_slots < 1 || n_slots > 65536 || timeout < 0) {
        PyErr_SetString(PyExc_ValueError, "Dataplane bounds out of range");
        return -1;
    }
    self->grants = PyMem_Calloc((size_t)max_grants, sizeof(dp_grant));
    self->slots = PyMem_Calloc((size_t)n_slots, sizeof(dp_slot));
    self->rxbuf = PyMem_Malloc((size_t)DP_VLEN * DP_RXBUF);
    self->plain = PyMem_Malloc(DP_HEADROOM + PKT_MAX_LEN);
    self->whole = PyMem_Malloc(PKT_MAX_LEN);
    self->scratch = PyMem_Malloc(PKT_MAX_LEN);
    self->sends = PyMem_Calloc((size_t)max_grants, sizeof(struct dp_send));
    self->frame = PyMem_Malloc(DP_FRAME_BUF);
    self->out = PyMem_Malloc((size_t)DP_TX_VLEN * PHYSMTU_MAX);
    self->gro.buf = PyMem_Malloc(DP_GRO_BUF);
    if (!self->grants || !self->slots || !self->rxbuf || !self->plain || !self->whole ||
        !self->scratch || !self->sends || !self->frame || !self->out || !self->gro.buf) {
        PyErr_NoMemory();
        return -1;
    }
    pthread_mutex_init(&self->lock, NULL);
    self->max_grants = max_grants;
    self->n_slots = n_slots;
    self->reasm_timeout = timeout;
    return 0;
}

static int dp_parse_addr(PyObject *ip_obj, int port, dp_addr *out)
{
    Py_buffer ip = {0};
    memset(out, 0, sizeof *out);
    if (PyObject_GetBuffer(ip_obj, &ip, PyBUF_SIMPLE) < 0)
        return 0;
    if (ip.len == 4)
        out->family = AF_INET;
    else if (ip.len == 16)
        out->family = AF_INET6;
    else {
        PyBuffer_Release(&ip);
        PyErr_SetString(PyExc_ValueError, "ip must be 4 or 16 bytes");
        return 0;
    }
    memcpy(out->ip, ip.buf, (size_t)ip.len);
    PyBuffer_Release(&ip);
    if (port < 0 || port > 65535) {
        PyErr_SetString(PyExc_ValueError, "port out of range");
        return 0;
    }
    out->port = (uint16_t)port;
    return 1;
}

static void put_mac(uint8_t *p, uint64_t mac)
{
    int i;
    for (i = 5; i >= 0; i--) {
        p[i] = (uint8_t)(mac & 0xFF);
        mac >>= 8;
    }
}

PyDoc_STRVAR(dp_replace_doc,
"replace(grants, kept=None) -> bool\n\n"
"Make the table exactly grants, a sequence of tuples (nwid, peer, sock_id, ip, port,\n"
"tap_fd, vnet, mtu, local_mac, peer_mac, ethertypes, siv, salsa_key, expires):\n"
"ethertypes a tuple of at most 8 (None: all), siv an AesGmacSiv or None. With kept\n"
"(the grants installed already): while the reactor's ring holds a datagram for the\n"
"core, kept is installed instead (a new grant must not let a later datagram overtake\n"
"it); True when grants was installed. A grant that stays (same nwid, peer, sock_id and\n"
"path) keeps its undrained activity; a removed grant's is lost: drain() first.\n"
"ValueError past max_grants.");

/* A grant's cipher: None (suite 1) or a keyed AesGmacSiv (suite 3), a new reference
 * in *out. 0 with a Python error if it is neither. */
static int dp_read_siv(PyObject *siv, PyObject **out)
{
    if (siv == Py_None)
        return 1;
    if (!PyObject_TypeCheck(siv, &AesGmacSivType) || !siv_ready((AesGmacSivObject *)siv)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_TypeError, "siv must be a keyed AesGmacSiv or None");
        return 0;
    }
    *out = Py_NewRef(siv);
    return 1;
}

/* A grant's ethertypes: None (any: *all set) or a sequence of at most
 * DP_MAX_ETHERTYPES values in [0, 0xFFFF]. 0 with a Python error otherwise. */
static int dp_read_ethertypes(PyObject *eth, uint16_t *ethertypes, int *n, int *all)
{
    PyObject *es;
    Py_ssize_t k, ne;
    if (eth == Py_None) {
        *all = 1;
        return 1;
    }
    es = PySequence_Fast(eth, "ethertypes must be a sequence or None");
    if (es == NULL)
        return 0;
    ne = PySequence_Fast_GET_SIZE(es);
    if (ne > DP_MAX_ETHERTYPES) {
        Py_DECREF(es);
        PyErr_SetString(PyExc_ValueError, "at most 8 ethertypes");
        return 0;
    }
    for (k = 0; k < ne; k++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(es, k));
        if (v < 0 || v > 0xFFFF) {
            Py_DECREF(es);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "ethertype out of range");
            return 0;
        }
        ethertypes[k] = (uint16_t)v;
    }
    *n = (int)ne;
    Py_DECREF(es);
    return 1;
}

static int dp_addr_eq(const dp_addr *a, const dp_addr *b);

static PyObject *dp_replace(DataplaneObject *self, PyObject *arg)
{
    PyObject *seq;
    Py_ssize_t n, i;
    dp_grant *fresh;

    seq = PySequence_Fast(arg, "grants must be a sequence");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > self->max_grants) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "more grants than max_grants");
        return NULL;
    }
    fresh = PyMem_Calloc((size_t)(n ? n : 1), sizeof(dp_grant));
    if (fresh == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (i = 0; i < n; i++) {
        dp_grant *g = &fresh[i];
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i), *ip, *eth, *siv;
        unsigned long long nwid, peer, lmac, pmac;
        int sock_id, port, tap_fd, vnet, mtu;
        long long expires;
        Py_buffer salsa = {0};

        if (!PyArg_ParseTuple(item, "KKiOiipiKKOOy*L:grant", &nwid, &peer, &sock_id, &ip, &port,
                              &tap_fd, &vnet, &mtu, &lmac, &pmac, &eth, &siv, &salsa, &expires))
            goto fail;
        if (!check_len(&salsa, 32, "salsa_key")) {
            PyBuffer_Release(&salsa);
            goto fail;
        }
        memcpy(g->salsa, salsa.buf, 32);
        PyBuffer_Release(&salsa);
        if (!dp_parse_addr(ip, port, &g->remote))
            goto fail;
        if (!dp_read_siv(siv, &g->siv) ||
            !dp_read_ethertypes(eth, g->ethertypes, &g->n_ethertypes, &g->all_ethertypes))
            goto fail;
        if (tap_fd < 0 || mtu < 0) {
            PyErr_SetString(PyExc_ValueError, "tap_fd and mtu must not be negative");
            goto fail;
        }
        g->nwid = nwid;
        g->peer = peer & 0xFFFFFFFFFFULL;
        g->sock_id = sock_id;
        g->tap_fd = tap_fd;
        g->vnet = vnet;
        g->mtu = mtu;
        put_mac(g->hdr, lmac);
        put_mac(g->hdr + 6, pmac);
        g->expires = expires;
        continue;
    fail:
        for (; i >= 0; i--)
            Py_CLEAR(fresh[i].siv);
        wipe(fresh, sizeof(dp_grant) * (size_t)(n ? n : 1));
        PyMem_Free(fresh);
        Py_DECREF(seq);
        return NULL;
    }
    Py_DECREF(seq);
    /* a grant that stays (same network, peer, socket and path) keeps its undrained
       activity: the reactor thread may have carried frames since the last drain() */
    for (i = 0; i < n; i++) {
        int k;
        for (k = 0; k < self->n_grants; k++) {
            const dp_grant *o = &self->grants[k];
            if (o->nwid == fresh[i].nwid && o->peer == fresh[i].peer &&
                o->sock_id == fresh[i].sock_id && dp_addr_eq(&o->remote, &fresh[i].remote)) {
                fresh[i].datagrams = o->datagrams;
                fresh[i].packets = o->packets;
                fresh[i].bytes = o->bytes;
                fresh[i].last_rx = o->last_rx;
                break;
            }
        }
    }
    dp_clear_grants(self);
    wipe(self->grants, sizeof(dp_grant) * (size_t)self->max_grants);
    if (n)
        memcpy(self->grants, fresh, sizeof(dp_grant) * (size_t)n);
    self->n_grants = (int)n;
    wipe(fresh, sizeof(dp_grant) * (size_t)(n ? n : 1));
    PyMem_Free(fresh); /* the siv references moved into the table */
    Py_RETURN_NONE;
}

PyDoc_STRVAR(dp_drain_doc,
"drain() -> list[tuple[int, int, int, bytes, int, int, int, int, int]]\n\n"
"(nwid, peer, sock_id, ip, port, datagrams, packets, bytes, last_rx) of every grant that\n"
"carried something since the last drain; its counts start again from zero.");

/* Append one activity record (drain's and drain_send's tuple) to out; 0 on error. */
static int dp_append_activity(PyObject *out, uint64_t nwid, uint64_t peer, int sock_id,
                              const dp_addr *remote, uint64_t datagrams, uint64_t packets,
                              uint64_t bytes, int64_t last)
{
    PyObject *rec = Py_BuildValue(
        "KKiy#iKKKL", (unsigned long long)nwid, (unsigned long long)peer, sock_id,
        (const char *)remote->ip, (Py_ssize_t)(remote->family == AF_INET ? 4 : 16),
        (int)remote->port, (unsigned long long)datagrams, (unsigned long long)packets,
        (unsigned long long)bytes, (long long)last);
    int ok = rec != NULL && PyList_Append(out, rec) == 0;
    Py_XDECREF(rec);
    return ok;
}

static PyObject *dp_drain(DataplaneObject *self, PyObject *unused)
{
    PyObject *out = PyList_New(0);
    int i;
    (void)unused;
    if (out == NULL)
        return NULL;
    for (i = 0; i < self->n_grants; i++) {
        dp_grant *g = &self->grants[i];
        if (g->datagrams == 0)
            continue;
        if (!dp_append_activity(out, g->nwid, g->peer, g->sock_id, &g->remote, g->datagrams,
                                g->packets, g->bytes, g->last_rx)) {
            Py_DECREF(out);
            return NULL;
        }
        g->datagrams = g->packets = g->bytes = 0;
    }
    return out;
}

PyDoc_STRVAR(dp_stats_doc,
"stats() -> dict[str, int]\n\n"
"Counters: delivered (frames written to ports), passed (datagrams given back),\n"
"reassembly_dropped (sets too long or inconsistent, given back), reassembly_evicted\n"
"(incomplete sets whose slot was reused), reassembly_expired (incomplete sets older than\n"
"the timeout), tap_errors (port writes that failed), read_errors, grants, slots; the send\n"
"side: sent (frames), given_back (port reads given back), send_errors, send_grants,\n"
"gso_runs (runs of datagrams sent as one UDP GSO message), gso_refused (1 once the\n"
"kernel refused UDP GSO: sends go one by one from then on); gro_writes (merged writes\n"
"of TCP segments to ports), gro_frames (the frames they held).");

static PyObject *dp_stats(DataplaneObject *self, PyObject *unused)
{
    (void)unused;
    return Py_BuildValue("{sKsKsKsKsKsKsKsisisKsKsKsisKsKsKsK}", "delivered",
                         (unsigned long long)self->delivered,
                         "passed", (unsigned long long)self->passed, "reassembly_dropped",
                         (unsigned long long)self->reasm_dropped, "reassembly_evicted",
                         (unsigned long long)self->reasm_evicted, "reassembly_expired",
                         (unsigned long long)self->reasm_expired, "tap_errors",
                         (unsigned long long)self->tap_errors, "read_errors",
                         (unsigned long long)self->read_errors, "grants", self->n_grants,
                         "slots", self->n_slots, "sent", (unsigned long long)self->sent,
                         "given_back", (unsigned long long)self->given_back, "send_errors",
                         (unsigned long long)self->send_errors, "send_grants", self->n_sends,
                         "gso_runs", (unsigned long long)self->gso_runs, "gso_refused",
                         (unsigned long long)self->gso_refused, "gro_writes",
                         (unsigned long long)self->gro.writes, "gro_frames",
                         (unsigned long long)self->gro.merged);
}

static int dp_addr_eq(const dp_addr *a, const dp_addr *b)
{
    return a->family == b->family && a->port == b->port &&
           memcmp(a->ip, b->ip, a->family == AF_INET ? 4 : 16) == 0;
}

/* The first live grant for (peer, path); -1 if none. */
static int dp_find_path(DataplaneObject *self, uint64_t peer, int sock_id, const dp_addr *from,
                        int64_t now)
{
    int i;
    for (i = 0; i < self->n_grants; i++) {
        dp_grant *g = &self->grants[i];
        if (g->peer == peer && g->sock_id == sock_id && g->expires > now &&
            dp_addr_eq(&g->remote, from))
            return i;
    }
    return -1;
}

/* Any live grant for the path (fragments carry no source address). */
static int dp_path_granted(DataplaneObject *self, int sock_id, const dp_addr *from, int64_t now)
{
    int i;
    for (i = 0; i < self->n_grants; i++) {
        dp_grant *g = &self->grants[i];
        if (g->sock_id == sock_id && g->expires > now && dp_addr_eq(&g->remote, from))
            return 1;
    }
    return 0;
}

/* Pass a datagram back: append (host, port, bytes) to out. 0 on a Python error. */
static int dp_pass(DataplaneObject *self, PyObject *out, const dp_addr *from, const uint8_t *p,
                   size_t n)
{
    char host[INET6_ADDRSTRLEN];
    PyObject *rec;
    if (out == NULL) /* the reactor thread's: into its ring */
        return dp_rt_pass(self, from, p, n);
    if (inet_ntop(from->family, from->ip, host, sizeof host) == NULL)
        host[0] = 0;
    rec = Py_BuildValue("siy#", host, (int)from->port, (const char *)p, (Py_ssize_t)n);
    if (rec == NULL || PyList_Append(out, rec) < 0) {
        Py_XDECREF(rec);
        return 0;
    }
    Py_DECREF(rec);
    self->passed++;
    return 1;
}

/* Open packet p[0:n] (from a peer with a grant g0 on this path) and write its frame.
   1: delivered; 0: not the steady state's (nothing done); -1: Python error. */
static int dp_deliver(DataplaneObject *self, int g0, int sock_id, const dp_addr *from,
                      const uint8_t *p, size_t n, int assembled, int64_t now, size_t datagrams)
{
    dp_grant *g = &self->grants[g0];
    uint8_t *plain = self->plain + DP_HEADROOM, *frame;
    uint8_t flags = p[18];
    int suite, ok, i;
    uint64_t nwid;
    uint16_t ethertype;
    size_t plen, payload;
    ssize_t w;

    if (n < PKT_MIN_LEN || n > PKT_MAX_LEN || memcmp(p + 8, self->address, 5) != 0)
        return 0;
    if (flags & (assembled ? 0x07 : 0x47))
        return 0;
    suite = (flags >> 3) & 7;
    plen = n - PKT_ENVELOPE;
    if (suite == 3 && g->siv != NULL) {
        ok = siv_open_into((AesGmacSivObject *)g->siv, p, n, plain);
        if (ok < 0)
            return -1;
    } else if (suite == 1) {
        /* Salsa dearmors in place: on a copy of the packet */
        memcpy(self->scratch, p, n);
        ok = salsa_dearmor_buf(g->salsa, self->scratch, n, 1);
        if (ok)
            memcpy(plain, self->scratch + PKT_ENVELOPE, plen);
    } else
        return 0;
    if (ok != 1)
        return 0;
    /* plain[0] verb (no compression flag), [1:9] network id, [9:11] ethertype */
    if (plain[0] != 6 || plen <= 11)
        return 0;
    nwid = load64_be(plain + 1);
    ethertype = (uint16_t)((plain[9] << 8) | plain[10]);
    payload = plen - 11;
    for (i = g0; i < self->n_grants; i++) {
        dp_grant *h = &self->grants[i];
        if (h->nwid == nwid && h->peer == g->peer && h->sock_id == sock_id && h->expires > now &&
            dp_addr_eq(&h->remote, from))
            break;
    }
    if (i == self->n_grants)
        return 0;
    g = &self->grants[i];
    if (payload > (size_t)g->mtu)
        return 0;
    if (!g->all_ethertypes) {
        int k, found = 0;
        for (k = 0; k < g->n_ethertypes; k++)
            found |= g->ethertypes[k] == ethertype;
        if (!found)
            return 0;
    }
    /* [vnet 10][dst 6][src 6][ethertype 2] right before the payload (plain + 11) */
    frame = plain + 11 - 14;
    memcpy(frame, g->hdr, 12);
    frame[12] = (uint8_t)(ethertype >> 8);
    frame[13] = (uint8_t)ethertype;
    if (g->vnet)
        dp_gro_offer(&self->gro, i, g->tap_fd, frame, (size_t)(plain + plen - frame),
                     &self->delivered, &self->tap_errors);
    else {
        dp_gro_flush(&self->gro, &self->delivered, &self->tap_errors);
        w = write(g->tap_fd, frame, (size_t)(plain + plen - frame));
        if (w < 0)
            self->tap_errors++;
        else
            self->delivered++;
    }
    g->datagrams += datagrams;
    g->packets++;
    g->bytes += n;
    g->last_rx = now;
    return 1;
}

static void dp_slot_free(dp_slot *s)
{
    s->used = 0;
    s->have = 0;
    s->total = 0;
    s->fill = 0;
}

/* The slot holding (packet id, path), or -1. */
static int dp_slot_find(DataplaneObject *self, uint64_t id, int sock_id, const dp_addr *from)
{
    int i;
    for (i = 0; i < self->n_slots; i++) {
        dp_slot *s = &self->slots[i];
        if (s->used && s->packet_id == id && s->sock_id == sock_id && dp_addr_eq(&s->remote, from))
            return i;
    }
    return -1;
}

/* Give a slot's datagrams back, head first, then fragments by number. */
static int dp_slot_pass(DataplaneObject *self, PyObject *out, dp_slot *s)
{
    int k;
    for (k = 0; k < DP_PIECES; k++)
        if ((s->have & (1u << k)) && !dp_pass(self, out, &s->remote, s->arena + s->off[k], s->len[k]))
            return 0;
    return 1;
}

/* A head (piece 0) or fragment (1..6) from a path that is granted or has a set waiting.
   1: taken (held, delivered or given back); 0: not taken (caller passes it); -1: error. */
static int dp_piece(DataplaneObject *self, PyObject *out, int sock_id, const dp_addr *from,
                    const uint8_t *p, size_t n, int64_t now)
{
    uint64_t id = load64_be(p);
    int number, total = 0, si, k;
    dp_slot *s;
    size_t wlen;
    uint64_t src;

    if (p[13] == 0xFF) {
        total = p[14] >> 4;
        number = p[14] & 0xF;
        /* the general path raises on these; let it */
        if (!(1 < total && total <= DP_PIECES && 1 <= number && number < total) || n <= 16)
            return 0;
    } else
        number = 0;
    si = dp_slot_find(self, id, sock_id, from);
    if (si < 0) {
        if (!dp_path_granted(self, sock_id, from, now))
            return 0;
        /* reuse the next slot in turn; an expired or evicted set is dropped */
        si = self->next_slot;
        self->next_slot = (self->next_slot + 1) % self->n_slots;
        s = &self->slots[si];
        if (s->used) {
            if (now - s->created > self->reasm_timeout)
                self->reasm_expired++;
            else
                self->reasm_evicted++;
        }
        if (s->arena == NULL) {
            s->arena = PyMem_RawMalloc(DP_SLOT_BYTES); /* no GIL on the reactor thread */
            if (s->arena == NULL) {
                if (out != NULL)
                    PyErr_NoMemory();
                return -1;
            }
        }
        dp_slot_free(s);
        s->used = 1;
        s->packet_id = id;
        s->sock_id = sock_id;
        s->remote = *from;
        s->created = now;
    } else {
        s = &self->slots[si];
        if (now - s->created > self->reasm_timeout) {
            /* too old to finish here: start again with this piece */
            self->reasm_expired++;
            dp_slot_free(s);
            s->used = 1;
            s->packet_id = id;
            s->sock_id = sock_id;
            s->remote = *from;
            s->created = now;
        }
    }
    if (s->have & (1u << number))
        return 1; /* a duplicate: the general path ignores it too */
    if (total) {
        if (s->total && s->total != total) {
            /* pieces disagree: let the general path judge all of them */
            self->reasm_dropped++;
            if (!dp_slot_pass(self, out, s) || !dp_pass(self, out, from, p, n))
                return -1;
            dp_slot_free(s);
            return 1;
        }
        s->total = total;
    }
    if (s->fill + n > DP_SLOT_BYTES) {
        self->reasm_dropped++;
        if (!dp_slot_pass(self, out, s) || !dp_pass(self, out, from, p, n))
            return -1;
        dp_slot_free(s);
        return 1;
    }
    memcpy(s->arena + s->fill, p, n);
    s->off[number] = (uint16_t)s->fill;
    s->len[number] = (uint16_t)n;
    s->fill += n;
    s->have |= 1u << number;
    if (!(s->have & 1) || s->total < 2 || s->have != (1u << s->total) - 1)
        return 1;
    /* whole: head, then each fragment's data */
    wlen = 0;
    for (k = 0; k < s->total; k++) {
        size_t skip = k ? DP_FRAGMENT_HEADER : 0, part = s->len[k] - skip;
        if (wlen + part > PKT_MAX_LEN) {
            wlen = 0;
            break;
        }
        memcpy(self->whole + wlen, s->arena + s->off[k] + skip, part);
        wlen += part;
    }
    if (wlen >= PKT_MIN_LEN) {
        int g, r;
        src = ((uint64_t)self->whole[13] << 32) | ((uint64_t)self->whole[14] << 24) |
              ((uint64_t)self->whole[15] << 16) | ((uint64_t)self->whole[16] << 8) |
              self->whole[17];
        g = dp_find_path(self, src, sock_id, from, now);
        if (g >= 0) {
            r = dp_deliver(self, g, sock_id, from, self->whole, wlen, 1, now, (size_t)s->total);
            if (r < 0)
                return -1;
            if (r == 1) {
                dp_slot_free(s);
                return 1;
            }
        }
    }
    if (!dp_slot_pass(self, out, s))
        return -1;
    dp_slot_free(s);
    return 1;
}

/* One datagram read from sock_id: deliver, hold or pass. 0 on a Python error. */
static int dp_datagram(DataplaneObject *self, PyObject *out, int sock_id, const dp_addr *from,
                       const uint8_t *p, size_t n, int64_t now)
{
    int r, g;
    if (n > 16 && n <= PKT_MAX_LEN + DP_FRAGMENT_HEADER &&
        (p[13] == 0xFF || (n >= PKT_MIN_LEN && (p[18] & 0x40))) &&
        memcmp(p + 8, self->address, 5) == 0) {
        r = dp_piece(self, out, sock_id, from, p, n, now);
        if (r < 0)
            return 0;
        if (r == 1)
            return 1;
    } else if (n >= PKT_MIN_LEN + 11 && n <= PKT_MAX_LEN && p[13] != 0xFF) {
        uint64_t src = ((uint64_t)p[13] << 32) | ((uint64_t)p[14] << 24) |
                       ((uint64_t)p[15] << 16) | ((uint64_t)p[16] << 8) | p[17];
        g = dp_find_path(self, src, sock_id, from, now);
        if (g >= 0) {
            r = dp_deliver(self, g, sock_id, from, p, n, 0, now, 1);
            if (r < 0)
                return 0;
            if (r == 1)
                return 1;
        }
    }
    return dp_pass(self, out, from, p, n);
}

static int dp_from_sockaddr(const struct sockaddr_storage *ss, dp_addr *a)
{
    memset(a, 0, sizeof *a);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        a->family = AF_INET;
        a->port = ntohs(in->sin_port);
        memcpy(a->ip, &in->sin_addr, 4);
        return 1;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        a->family = AF_INET6;
        a->port = ntohs(in6->sin6_port);
        memcpy(a->ip, &in6->sin6_addr, 16);
        return 1;
    }
    return 0;
}

/* One recvmmsg's worth of headers over DP_VLEN buffers of DP_RXBUF bytes, each with
   room for a UDP_GRO segment size (rx_burst's and the reactor's reads). */
typedef struct {
    struct mmsghdr msgs[DP_VLEN];
    struct iovec iov[DP_VLEN];
    struct sockaddr_storage names[DP_VLEN];
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl[DP_VLEN];
} dp_recv;

/* Point the first want headers of r at rxbuf's buffers, ready for recvmmsg. */
static void dp_recv_prepare(dp_recv *r, uint8_t *rxbuf, int want)
{
    int m;
    for (m = 0; m < want; m++) {
        r->iov[m].iov_base = rxbuf + (size_t)m * DP_RXBUF;
        r->iov[m].iov_len = DP_RXBUF;
        memset(&r->msgs[m], 0, sizeof r->msgs[m]);
        r->msgs[m].msg_hdr.msg_name = &r->names[m];
        r->msgs[m].msg_hdr.msg_namelen = sizeof r->names[m];
        r->msgs[m].msg_hdr.msg_iov = &r->iov[m];
        r->msgs[m].msg_hdr.msg_iovlen = 1;
        r->msgs[m].msg_hdr.msg_control = r->ctl[m].buf;
        r->msgs[m].msg_hdr.msg_controllen = sizeof r->ctl[m].buf;
    }
}

/* The length of the datagrams in read m (several when UDP GRO merged them): the
   UDP_GRO segment size, or the whole read (1 for an empty one). */
static size_t dp_recv_segment(dp_recv *r, int m)
{
    struct msghdr *h = &r->msgs[m].msg_hdr;
    size_t n = r->msgs[m].msg_len, segment = 0;
    struct cmsghdr *c;
    for (c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int seg;
            memcpy(&seg, CMSG_DATA(c), sizeof seg);
            segment = seg > 0 ? (size_t)seg : 0;
        }
    if (segment == 0 || segment >= n)
        segment = n ? n : 1;
    return segment;
}

PyDoc_STRVAR(dp_rx_burst_doc,
"rx_burst(fd, sock_id, now, budget) -> list[tuple[str, int, bytes]]\n\n"
"Read the non-blocking UDP socket fd (the service's socket sock_id) until EAGAIN or\n"
"budget reads (recvmmsg; a read with a UDP_GRO segment size is cut into its\n"
"datagrams). The steady state's frames go to their ports (to a port with a\n"
"virtio_net_hdr, runs of TCP segments merged as osdep/linux/gro.py does, see\n"
"_dp_gro.h); every other datagram comes\n"
"back as (host, port, datagram), in arrival order. now: the core's clock (ms).");

static PyObject *dp_rx_burst(DataplaneObject *self, PyObject *args)
{
    int fd, sock_id, budget, reads = 0;
    long long now;
    PyObject *out;
    dp_recv r;

    if (!PyArg_ParseTuple(args, "iiLi:rx_burst", &fd, &sock_id, &now, &budget))
        return NULL;
    if (self->grants == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Dataplane is not initialized");
        return NULL;
    }
    out = PyList_New(0);
    if (out == NULL)
        return NULL;
    while (reads < budget) {
        int want = budget - reads < DP_VLEN ? budget - reads : DP_VLEN, got, m;
        dp_recv_prepare(&r, self->rxbuf, want);
        got = recvmmsg(fd, r.msgs, (unsigned)want, MSG_DONTWAIT, NULL);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR)
                continue;
            /* ICMP errors surface here (ECONNREFUSED...): not fatal, as in udp.py */
            self->read_errors++;
            reads++;
            continue;
        }
        reads += got;
        for (m = 0; m < got; m++) {
            size_t n = r.msgs[m].msg_len, segment, at;
            const uint8_t *p = r.iov[m].iov_base;
            dp_addr from;
            if (!dp_from_sockaddr(&r.names[m], &from))
                continue;
            segment = dp_recv_segment(&r, m);
            for (at = 0; at < n || (n == 0 && at == 0); at += segment) {
                size_t len = n - at < segment ? n - at : segment;
                if (!dp_datagram(self, out, sock_id, &from, p + at, len, now)) {
                    dp_gro_flush(&self->gro, &self->delivered, &self->tap_errors);
                    Py_DECREF(out);
                    return NULL;
                }
                if (n == 0)
                    break;
            }
        }
        if (got < want)
            break;
    }
    dp_gro_flush(&self->gro, &self->delivered, &self->tap_errors);
    return out;
}

/* --- send side -------------------------------------------------------------- */

/*
 * A send grant (the core's, mirrored like the receive grants): a unicast frame from
 * our MAC on network N to member M's MAC, ethertype granted, payload within the
 * port's MTU, goes as a FRAME to M over the granted path from the granted UDP socket:
 * sealed from the per-peer template exactly as seal_frame does (packet id from
 * getrandom, through dp_packet_id's pool), cut for the physical MTU, sent with
 * sendmmsg. tx_burst() reads a port until EAGAIN or its budget and gives back, as read
 * (virtio_net_hdr included), every frame it did not send and every frame after the
 * first one it gave back, so a port's frames keep their order.
 */

PyDoc_STRVAR(dp_replace_send_doc,
"replace_send(grants) -> None\n\n"
"Make the send table exactly grants, tuples (nwid, peer, dst_mac, src_mac, sock_fd,\n"
"sock_id, ip, port, template, siv, salsa_key, ethertypes, mtu, physmtu, expires):\n"
"template the FRAME's 28 bytes [8:36] (frame_hop.frame_template), siv an AesGmacSiv\n"
"(suite 3) or None (suite 1), ethertypes a tuple of at most 8 or None (all), mtu the\n"
"largest payload, physmtu the datagram size the packet is cut for. A grant that stays\n"
"(same nwid, peer, sock_id and path) keeps its undrained activity; a removed grant's is\n"
"lost: drain_send() first.");

static void dp_clear_sends(DataplaneObject *self)
{
    int i;
    for (i = 0; i < self->n_sends; i++)
        Py_CLEAR(self->sends[i].siv);
    self->n_sends = 0;
}

static PyObject *dp_replace_send(DataplaneObject *self, PyObject *arg)
{
    PyObject *seq;
    Py_ssize_t n, i;
    struct dp_send *fresh;

    if (self->sends == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Dataplane is not initialized");
        return NULL;
    }
    seq = PySequence_Fast(arg, "grants must be a sequence");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > self->max_grants) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "more send grants than max_grants");
        return NULL;
    }
    fresh = PyMem_Calloc((size_t)(n ? n : 1), sizeof(struct dp_send));
    if (fresh == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (i = 0; i < n; i++) {
        struct dp_send *g = &fresh[i];
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i), *ip, *eth, *siv;
        unsigned long long nwid, peer, dst, src;
        int sock_fd, sock_id, port, mtu, physmtu;
        long long expires;
        Py_buffer tmpl = {0}, salsa = {0};

        if (!PyArg_ParseTuple(item, "KKKKiiOiy*Oy*OiiL:send grant", &nwid, &peer, &dst, &src,
                              &sock_fd, &sock_id, &ip, &port, &tmpl, &siv, &salsa, &eth, &mtu,
                              &physmtu, &expires))
            goto fail;
        if (!check_len(&tmpl, FRAME_HEADER_LEN - 8, "template") ||
            !check_len(&salsa, 32, "salsa_key")) {
            PyBuffer_Release(&tmpl);
            PyBuffer_Release(&salsa);
            goto fail;
        }
        memcpy(g->template, tmpl.buf, FRAME_HEADER_LEN - 8);
        memcpy(g->salsa, salsa.buf, 32);
        PyBuffer_Release(&tmpl);
        PyBuffer_Release(&salsa);
        if (!dp_parse_addr(ip, port, &g->remote))
            goto fail;
        memset(&g->to, 0, sizeof g->to);
        if (g->remote.family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&g->to;
            in->sin_family = AF_INET;
            in->sin_port = htons(g->remote.port);
            memcpy(&in->sin_addr, g->remote.ip, 4);
            g->tolen = sizeof *in;
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&g->to;
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons(g->remote.port);
            memcpy(&in6->sin6_addr, g->remote.ip, 16);
            g->tolen = sizeof *in6;
        }
        if (!dp_read_siv(siv, &g->siv) ||
            !dp_read_ethertypes(eth, g->ethertypes, &g->n_ethertypes, &g->all_ethertypes))
            goto fail;
        if (sock_fd < 0 || mtu < 0 || physmtu < 1400 || physmtu > PHYSMTU_MAX) {
            PyErr_SetString(PyExc_ValueError, "sock_fd, mtu or physmtu out of range");
            goto fail;
        }
        g->nwid = nwid;
        g->peer = peer & 0xFFFFFFFFFFULL;
        put_mac(g->dst, dst);
        put_mac(g->src, src);
        g->sock_fd = sock_fd;
        g->sock_id = sock_id;
        g->mtu = mtu;
        g->physmtu = physmtu;
        g->expires = expires;
        continue;
    fail:
        for (; i >= 0; i--)
            Py_CLEAR(fresh[i].siv);
        wipe(fresh, sizeof(struct dp_send) * (size_t)(n ? n : 1));
        PyMem_Free(fresh);
        Py_DECREF(seq);
        return NULL;
    }
    Py_DECREF(seq);
    /* a send grant that stays keeps its undrained activity (see dp_replace) */
    for (i = 0; i < n; i++) {
        int k;
        for (k = 0; k < self->n_sends; k++) {
            const struct dp_send *o = &self->sends[k];
            if (o->nwid == fresh[i].nwid && o->peer == fresh[i].peer &&
                o->sock_id == fresh[i].sock_id && dp_addr_eq(&o->remote, &fresh[i].remote)) {
                fresh[i].datagrams = o->datagrams;
                fresh[i].packets = o->packets;
                fresh[i].bytes = o->bytes;
                fresh[i].last_tx = o->last_tx;
                break;
            }
        }
    }
    dp_clear_sends(self);
    wipe(self->sends, sizeof(struct dp_send) * (size_t)self->max_grants);
    if (n)
        memcpy(self->sends, fresh, sizeof(struct dp_send) * (size_t)n);
    self->n_sends = (int)n;
    wipe(fresh, sizeof(struct dp_send) * (size_t)(n ? n : 1));
    PyMem_Free(fresh);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(dp_drain_send_doc,
"drain_send() -> list[tuple[int, int, int, bytes, int, int, int, int, int]]\n\n"
"(nwid, peer, sock_id, ip, port, datagrams, packets, bytes, last_tx) of every send\n"
"grant that carried something since the last drain; its counts start again from zero.");

static PyObject *dp_drain_send(DataplaneObject *self, PyObject *unused)
{
    PyObject *out = PyList_New(0);
    int i;
    (void)unused;
    if (out == NULL)
        return NULL;
    for (i = 0; i < self->n_sends; i++) {
        struct dp_send *g = &self->sends[i];
        if (g->packets == 0)
            continue;
        if (!dp_append_activity(out, g->nwid, g->peer, g->sock_id, &g->remote, g->datagrams,
                                g->packets, g->bytes, g->last_tx)) {
            Py_DECREF(out);
            return NULL;
        }
        g->datagrams = g->packets = g->bytes = 0;
    }
    return out;
}

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define DP_GSO_SEGMENTS 64             /* UDP_MAX_SEGMENTS of older kernels */
#define DP_GSO_BYTES (65535 - 40 - 8)  /* an IPv6 datagram's payload, headers off */

/* Datagrams [at, at + count) of the out queue sent one by one (no GSO). */
static void dp_send_singly(DataplaneObject *self, int at, int count)
{
    int i;
    for (i = at; i < at + count; i++) {
        ssize_t r;
        do
            r = sendto(self->out_fd, self->out + (size_t)i * PHYSMTU_MAX, self->out_len[i],
                       MSG_DONTWAIT, (const struct sockaddr *)self->out_to[i],
                       self->out_tolen[i]);
        while (r < 0 && errno == EINTR);
        if (r < 0)
            self->send_errors++; /* lost, as a failed sendto would be */
    }
}

/*
 * Send what waits in the out queue (one socket). Consecutive datagrams for one
 * destination, all as long as the first but the last (a packet's head and fragments
 * are cut that way, and a burst of full frames gives a run of equal datagrams), leave
 * as one message with UDP_SEGMENT: the kernel cuts it back into exactly these
 * datagrams, so the wire is what single sends make, but the stack is walked once per
 * run. Where the kernel refuses GSO, the run goes one by one; ENOPROTOOPT or
 * EOPNOTSUPP (no UDP GSO in this kernel) or EIO/EINVAL (a path that cannot carry it)
 * switch it off for this data plane, counted in gso_refused.
 */
static void dp_flush(DataplaneObject *self)
{
    struct mmsghdr msgs[DP_TX_VLEN];
    struct iovec iov[DP_TX_VLEN];
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl[DP_TX_VLEN];
    int first[DP_TX_VLEN], count[DP_TX_VLEN];
    int i, n_msgs = 0, at = 0;

    if (self->n_out == 0)
        return;
    for (i = 0; i < self->n_out; i++) {
        iov[i].iov_base = self->out + (size_t)i * PHYSMTU_MAX;
        iov[i].iov_len = self->out_len[i];
    }
    i = 0;
    while (i < self->n_out) {
        struct msghdr *h = &msgs[n_msgs].msg_hdr;
        size_t seg = self->out_len[i], bytes = seg;
        int j = i + 1;
        if (!self->gso_off)
            while (j < self->n_out && j - i < DP_GSO_SEGMENTS &&
                   self->out_to[j] == self->out_to[i] && self->out_len[j - 1] == seg &&
                   self->out_len[j] <= seg && bytes + self->out_len[j] <= DP_GSO_BYTES) {
                bytes += self->out_len[j];
                j++;
            }
        memset(&msgs[n_msgs], 0, sizeof msgs[n_msgs]);
        h->msg_name = (void *)self->out_to[i];
        h->msg_namelen = self->out_tolen[i];
        h->msg_iov = &iov[i];
        h->msg_iovlen = (size_t)(j - i);
        if (j - i > 1) {
            struct cmsghdr *c;
            uint16_t size = (uint16_t)seg;
            memset(&ctl[n_msgs], 0, sizeof ctl[n_msgs]);
            h->msg_control = ctl[n_msgs].buf;
            h->msg_controllen = sizeof ctl[n_msgs].buf;
            c = CMSG_FIRSTHDR(h);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof size);
            memcpy(CMSG_DATA(c), &size, sizeof size);
            self->gso_runs++;
        }
        first[n_msgs] = i;
        count[n_msgs] = j - i;
        n_msgs++;
        i = j;
    }
    while (at < n_msgs) {
        int r = sendmmsg(self->out_fd, msgs + at, (unsigned)(n_msgs - at), MSG_DONTWAIT);
        if (r >= 0) {
            at += r;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (count[at] > 1 && (errno == ENOPROTOOPT || errno == EOPNOTSUPP || errno == EIO ||
                              errno == EINVAL || errno == EMSGSIZE)) {
            if (errno != EMSGSIZE) {
                self->gso_off = 1;
                self->gso_refused++;
            }
            dp_send_singly(self, first[at], count[at]);
        } else
            self->send_errors += (uint64_t)count[at]; /* lost, as failed sendtos would be */
        at++;
    }
    self->n_out = 0;
}

static uint8_t *dp_out_slot(DataplaneObject *self, struct dp_send *g, size_t len)
{
    uint8_t *q;
    if (self->n_out == DP_TX_VLEN || (self->n_out && self->out_fd != g->sock_fd))
        dp_flush(self);
    q = self->out + (size_t)self->n_out * PHYSMTU_MAX;
    self->out_fd = g->sock_fd;
    self->out_len[self->n_out] = len;
    self->out_to[self->n_out] = &g->to;
    self->out_tolen[self->n_out] = g->tolen;
    self->n_out++;
    return q;
}

/*
 * Packet ids (PROTOCOL-CORE §4.7, bytes [0:8]): random; Salsa20's nonce (suite 1) and
 * the IV suite 3's tag starts from, so one must never be used twice under a key. One
 * getrandom(8) per packet cost ~0.4 us, some 15% of the sender's CPU per GB; ids are
 * drawn 256 bytes (32 ids) per call instead, as service/entropy.py does for the core.
 * The pool is per thread (the event loop's and the reactor's never share one) and a
 * forked child starts with it empty (dp_forget_ids, registered with pthread_atfork at
 * import), so a child never sends the ids its parent will send.
 * Ids are public (they travel in clear), so the pool holds nothing secret.
 */
static __thread uint8_t dp_id_pool[256];
static __thread size_t dp_id_left;

static void dp_forget_ids(void)
{
    dp_id_left = 0;
}

/* 0 with 8 fresh random bytes in out, -1 if getrandom refused. */
static int dp_packet_id(uint8_t *out)
{
    if (dp_id_left < 8) {
        /* up to 256 bytes: never a short read once the pool is initialized */
        if (getrandom(dp_id_pool, sizeof dp_id_pool, 0) != (ssize_t)sizeof dp_id_pool)
            return -1;
        dp_id_left = sizeof dp_id_pool;
    }
    dp_id_left -= 8;
    memcpy(out, dp_id_pool + dp_id_left, 8);
    return 0;
}

#include "_dp_tso.h"

/* One frame read from the port of nwid: 1 sent, 0 not the steady state's, -1 error. */
static int dp_tx_frame(DataplaneObject *self, uint64_t nwid, int vnet, const uint8_t *f,
                       size_t n, int64_t now)
{
    size_t at = vnet ? 10 : 0, plen, len, max_len, per, total, size, chunk, offset, k;
    const uint8_t *eth, *payload;
    uint16_t ethertype;
    struct dp_send *g = NULL;
    uint8_t *buf = self->scratch;
    int i;

    if (vnet && (f[0] | f[1])) /* a checksum to finish or GSO (_dp_tso.h) */
        return f == self->frame ? dp_tso_tx(self, nwid, n, now) : 0;
    if (n <= at + 14)
        return 0;
    eth = f + at;
    payload = eth + 14;
    plen = n - at - 14;
    ethertype = (uint16_t)((eth[12] << 8) | eth[13]);
    for (i = 0; i < self->n_sends; i++) {
        struct dp_send *h = &self->sends[i];
        if (h->nwid == nwid && memcmp(h->dst, eth, 6) == 0 && memcmp(h->src, eth + 6, 6) == 0 &&
            h->expires > now) {
            g = h;
            break;
        }
    }
    if (g == NULL || plen > (size_t)g->mtu)
        return 0;
    if (!g->all_ethertypes) {
        int found = 0;
        for (i = 0; i < g->n_ethertypes; i++)
            found |= g->ethertypes[i] == ethertype;
        if (!found)
            return 0;
    }
    len = FRAME_HEADER_LEN + 2 + plen;
    max_len = (size_t)g->physmtu + (FRAG_MAX - 1) * ((size_t)g->physmtu - FRAG_HEADER);
    if (max_len > PKT_MAX_LEN)
        max_len = PKT_MAX_LEN;
    if (len > max_len)
        return 0;
    if (dp_packet_id(buf) != 0)
        return 0;
    memcpy(buf + 8, g->template, FRAME_HEADER_LEN - 8);
    buf[FRAME_HEADER_LEN] = eth[12];
    buf[FRAME_HEADER_LEN + 1] = eth[13];
    memcpy(buf + FRAME_HEADER_LEN + 2, payload, plen);
    if (len > (size_t)g->physmtu)
        buf[18] |= 0x40;
    else
        buf[18] &= (uint8_t)~0x40;
    if (g->siv != NULL) {
        buf[18] = (uint8_t)((buf[18] & 0x47) | (3 << 3));
        if (!siv_armor_buf((AesGmacSivObject *)g->siv, buf, len))
            return -1;
    } else {
        buf[18] = (uint8_t)((buf[18] & 0x47) | (1 << 3) | 0x80);
        salsa_armor_buf(g->salsa, buf, len, 1);
    }
    g->packets++;
    g->bytes += len;
    g->last_tx = now;
    if (len <= (size_t)g->physmtu) {
        memcpy(dp_out_slot(self, g, len), buf, len);
        g->datagrams++;
        return 1;
    }
    /* the cut of fragment.split: every piece as long as the head, the last excepted */
    per = (size_t)g->physmtu - FRAG_HEADER;
    total = (len - (size_t)g->physmtu + per - 1) / per + 1;
    size = (len + FRAG_HEADER * (total - 1) + total - 1) / total;
    chunk = size - FRAG_HEADER;
    memcpy(dp_out_slot(self, g, size), buf, size);
    offset = size;
    for (k = 1; k < total; k++) {
        size_t take = len - offset < chunk ? len - offset : chunk;
        uint8_t *q = dp_out_slot(self, g, FRAG_HEADER + take);
        memcpy(q, buf, 13);
        q[13] = 0xFF;
        q[14] = (uint8_t)((total << 4) | k);
        q[15] = 0;
        memcpy(q + FRAG_HEADER, buf + offset, take);
        offset += take;
    }
    g->datagrams += total;
    g->bytes += FRAG_HEADER * (total - 1);
    return 1;
}

PyDoc_STRVAR(dp_tx_burst_doc,
"tx_burst(fd, vnet, nwid, now, budget) -> list[bytes]\n\n"
"Read the non-blocking port fd of network nwid (vnet: each read starts with a\n"
"virtio_net_hdr) until EAGAIN or budget reads. The steady state's frames are sealed\n"
"and sent under their send grants; every other read, and every read after the first\n"
"one given back, comes back as read. OSError when the first read fails.");

static PyObject *dp_tx_burst(DataplaneObject *self, PyObject *args)
{
    int fd, vnet, budget, reads = 0, giving_back = 0;
    unsigned long long nwid;
    long long now;
    PyObject *out;

    if (!PyArg_ParseTuple(args, "ipKLi:tx_burst", &fd, &vnet, &nwid, &now, &budget))
        return NULL;
    if (self->sends == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Dataplane is not initialized");
        return NULL;
    }
    out = PyList_New(0);
    if (out == NULL)
        return NULL;
    while (reads < budget) {
        ssize_t n = read(fd, self->frame, DP_FRAME_BUF);
        int r = 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (reads == 0) {
                dp_flush(self);
                Py_DECREF(out);
                return PyErr_SetFromErrno(PyExc_OSError);
            }
            break;
        }
        reads++;
        if (!giving_back) {
            r = dp_tx_frame(self, nwid, vnet, self->frame, (size_t)n, now);
            if (r < 0) {
                dp_flush(self);
                Py_DECREF(out);
                return NULL;
            }
        }
        if (r == 1) {
            self->sent++;
            continue;
        }
        giving_back = 1;
        {
            PyObject *raw = PyBytes_FromStringAndSize((const char *)self->frame, n);
            if (raw == NULL || PyList_Append(out, raw) < 0) {
                Py_XDECREF(raw);
                dp_flush(self);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(raw);
            self->given_back++;
        }
    }
    dp_flush(self);
    return out;
}

#include "_dp_reactor.h"

static PyMethodDef dp_methods[] = {
    {"replace", (PyCFunction)dp_locked_replace, METH_VARARGS, dp_replace_doc},
    {"drain", (PyCFunction)dp_locked_drain, METH_NOARGS, dp_drain_doc},
    {"stats", (PyCFunction)dp_locked_stats, METH_NOARGS, dp_stats_doc},
    {"rx_burst", (PyCFunction)dp_locked_rx_burst, METH_VARARGS, dp_rx_burst_doc},
    {"replace_send", (PyCFunction)dp_locked_replace_send, METH_O, dp_replace_send_doc},
    {"drain_send", (PyCFunction)dp_locked_drain_send, METH_NOARGS, dp_drain_send_doc},
    {"tx_burst", (PyCFunction)dp_locked_tx_burst, METH_VARARGS, dp_tx_burst_doc},
    {"start", (PyCFunction)dp_start, METH_VARARGS, dp_start_doc},
    {"stop", (PyCFunction)dp_stop, METH_NOARGS, dp_stop_doc},
    {"watch_socket", (PyCFunction)dp_watch_socket, METH_VARARGS, dp_watch_socket_doc},
    {"watch_port", (PyCFunction)dp_watch_port, METH_VARARGS, dp_watch_port_doc},
    {"unwatch", (PyCFunction)dp_unwatch, METH_O, dp_unwatch_doc},
    {"take", (PyCFunction)dp_take, METH_NOARGS, dp_take_doc},
    {"taken", (PyCFunction)dp_taken, METH_NOARGS, dp_taken_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(dp_doc,
"Dataplane(address, max_grants, reassembly_slots, reassembly_timeout)\n\n"
"The native receive table of the steady state (see _speedups.pyi): address is ours (5\n"
"bytes); the bounds come from ztone.node.bounds.");

static PyMemberDef dp_members[] = {
    /* read per burst by the service (is a port worth reading at once?): a plain
       attribute, no dict built as stats() does */
    {"delivered", T_ULONGLONG, offsetof(DataplaneObject, delivered), READONLY,
     "Frames written to ports so far (the counter stats() names delivered)."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject DataplaneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ztone._speedups.Dataplane",
    .tp_basicsize = sizeof(DataplaneObject),
    .tp_dealloc = (destructor)dp_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = dp_doc,
    .tp_methods = dp_methods,
    .tp_members = dp_members,
    .tp_init = (initproc)dp_init,
    .tp_new = PyType_GenericNew,
};
#endif /* __linux__ */

/* ------------------------------------------------------------------------- */
/* Module                                                                    */
/* ------------------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"salsa20_xor", (PyCFunction)(void (*)(void))sp_salsa20_xor, METH_VARARGS | METH_KEYWORDS,
     salsa20_xor_doc},
    {"poly1305", (PyCFunction)(void (*)(void))sp_poly1305, METH_VARARGS | METH_KEYWORDS,
     poly1305_doc},
    {"memory_hard_hash", (PyCFunction)(void (*)(void))sp_memory_hard_hash,
     METH_VARARGS | METH_KEYWORDS, memory_hard_hash_doc},
    {"armor_salsa", (PyCFunction)(void (*)(void))sp_armor_salsa, METH_VARARGS | METH_KEYWORDS,
     armor_salsa_doc},
    {"dearmor_salsa", (PyCFunction)(void (*)(void))sp_dearmor_salsa,
     METH_VARARGS | METH_KEYWORDS, dearmor_salsa_doc},
    {"inet_sum", (PyCFunction)(void (*)(void))sp_inet_sum, METH_FASTCALL, inet_sum_doc},
    {"seal_frame", (PyCFunction)sp_seal_frame, METH_VARARGS, seal_frame_doc},
    {"open_packet", (PyCFunction)sp_open_packet, METH_VARARGS, open_packet_doc},
    {"x25519_public", (PyCFunction)sp_x25519_public, METH_VARARGS, x25519_public_doc},
    {"ed25519_public", (PyCFunction)sp_ed25519_public, METH_VARARGS, ed25519_public_doc},
    {"x25519", (PyCFunction)sp_x25519, METH_VARARGS, x25519_doc},
    {"ed25519_sign", (PyCFunction)sp_ed25519_sign, METH_VARARGS, ed25519_sign_doc},
    {"ed25519_verify", (PyCFunction)sp_ed25519_verify, METH_VARARGS, ed25519_verify_doc},
    MEM_PAGES_METHODS
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ztone._speedups",
    .m_doc = "Optional native accelerator for ztone's crypto and checksums (see _speedups.pyi).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    PyObject *m;

    if (PyType_Ready(&AesGmacSivType) < 0)
        return NULL;
    m = PyModule_Create(&speedups_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "AesGmacSiv", (PyObject *)&AesGmacSivType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#ifdef __linux__
    if (pthread_atfork(NULL, NULL, dp_forget_ids) != 0) {
        Py_DECREF(m);
        PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
        return NULL;
    }
    if (PyType_Ready(&DataplaneType) < 0 ||
        PyModule_AddObjectRef(m, "Dataplane", (PyObject *)&DataplaneType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}
