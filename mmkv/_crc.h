/* CRC-32 as zlib computes it (reflected polynomial 0xEDB88320), and 8-byte atomics.
 *
 * Two implementations of one function, crc32_zlib(start, p, n) == zlib.crc32(p, start):
 * slicing-by-8 tables, and on x86-64 CPUs with PCLMULQDQ, carry-less multiplication folding
 * of 16-byte blocks (chosen at run time). Written for mmkv; the folding constants are derived
 * here at start-up (x^k mod P), not copied.
 *
 * Folding: view 16 bytes as a 128-bit little-endian V where bit i stands for x^(127-i) (the
 * reflected convention). Folding block A over a distance of D bits is A*x^D mod P =
 * A_hi*x^(64+D) + A_lo*x^D; a carry-less multiply of two reflected 64-bit lanes yields the
 * product times x, so the constants are x^(64+D-1) mod P and x^(D-1) mod P, bit-reversed. The
 * last 16 bytes are finished with the table code. */
#ifndef MMKV_CRC_H
#define MMKV_CRC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t rd64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t rd16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline double rdf64(const unsigned char *p) { double v; memcpy(&v, p, 8); return v; }

/* Publishing stores and the loads that observe them (see docs/explanation/concurrency.rst):
 * a writer's release store of a slot word or of the published word orders every store it made
 * before it (the records, the meta) before it; a reader's acquire load of that word orders every
 * load it makes after it (the meta, the slot, the record) after it. On x86-64 both compile to a
 * plain mov; on aarch64 to stlr/ldar. */
static inline uint64_t load_acquire(const unsigned char *p) {
    return __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_ACQUIRE);
}
static inline void store_release(unsigned char *p, uint64_t v) {
    __atomic_store_n((uint64_t *)(void *)p, v, __ATOMIC_RELEASE);
}

static uint32_t crc_table[8][256];

static void crc_init_tables(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

static uint32_t crc32_tables(uint32_t start, const unsigned char *p, size_t n) {
    uint32_t c = ~start;
    while (n && ((uintptr_t)p & 7)) { c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8); n--; }
    while (n >= 8) {
        uint32_t lo = rd32(p) ^ c, hi = rd32(p + 4);
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
            crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
            crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return ~c;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <wmmintrin.h>
#define MMKV_HAVE_FOLDING 1
static uint64_t fold_k128[2], fold_k512[2];
static int have_pclmul = 0;

static uint64_t xpow_mod(unsigned n) { /* x^n mod P, normal bit order, P = 0x104C11DB7 */
    uint64_t r = 1;
    while (n--) {
        r <<= 1;
        if (r & (UINT64_C(1) << 32)) r ^= UINT64_C(0x104C11DB7);
    }
    return r;
}

static uint64_t reverse64(uint64_t v) {
    uint64_t r = 0;
    for (int i = 0; i < 64; i++)
        if (v & (UINT64_C(1) << i)) r |= UINT64_C(1) << (63 - i);
    return r;
}

static void crc_init_folding(void) {
    fold_k128[0] = reverse64(xpow_mod(64 + 128 - 1));
    fold_k128[1] = reverse64(xpow_mod(128 - 1));
    fold_k512[0] = reverse64(xpow_mod(64 + 512 - 1));
    fold_k512[1] = reverse64(xpow_mod(512 - 1));
    __builtin_cpu_init();
    have_pclmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}

__attribute__((target("pclmul,sse4.1"))) static inline __m128i fold(__m128i v, __m128i k,
                                                                     __m128i next) {
    return _mm_xor_si128(
        _mm_xor_si128(_mm_clmulepi64_si128(v, k, 0x00), _mm_clmulepi64_si128(v, k, 0x11)), next);
}

__attribute__((target("pclmul,sse4.1"))) static uint32_t crc32_folding(uint32_t start,
                                                                       const unsigned char *p,
                                                                       size_t n) {
    __m128i k1 = _mm_set_epi64x((long long)fold_k128[1], (long long)fold_k128[0]);
    __m128i v0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)p), _mm_cvtsi32_si128((int)~start));
    if (n >= 128) {
        __m128i k4 = _mm_set_epi64x((long long)fold_k512[1], (long long)fold_k512[0]);
        __m128i v1 = _mm_loadu_si128((const __m128i *)(p + 16));
        __m128i v2 = _mm_loadu_si128((const __m128i *)(p + 32));
        __m128i v3 = _mm_loadu_si128((const __m128i *)(p + 48));
        p += 64;
        n -= 64;
        while (n >= 64) {
            v0 = fold(v0, k4, _mm_loadu_si128((const __m128i *)p));
            v1 = fold(v1, k4, _mm_loadu_si128((const __m128i *)(p + 16)));
            v2 = fold(v2, k4, _mm_loadu_si128((const __m128i *)(p + 32)));
            v3 = fold(v3, k4, _mm_loadu_si128((const __m128i *)(p + 48)));
            p += 64;
            n -= 64;
        }
        v0 = fold(v0, k1, v1);
        v0 = fold(v0, k1, v2);
        v0 = fold(v0, k1, v3);
    } else {
        p += 16;
        n -= 16;
    }
    while (n >= 16) {
        v0 = fold(v0, k1, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
    unsigned char rem[16];
    _mm_storeu_si128((__m128i *)rem, v0);
    uint32_t t = crc32_tables(0xFFFFFFFFu, rem, 16); /* = ~(the raw register) */
    return crc32_tables(t, p, n);                   /* continue from that register */
}
#else
#define MMKV_HAVE_FOLDING 0
static void crc_init_folding(void) {}
#endif

/* zlib.crc32(p[:n], start) */
static inline uint32_t crc32_zlib(uint32_t start, const unsigned char *p, size_t n) {
#if MMKV_HAVE_FOLDING
    if (n >= 64 && have_pclmul) return crc32_folding(start, p, n);
#endif
    return crc32_tables(start, p, n);
}

static int crc_uses_folding(void) {
#if MMKV_HAVE_FOLDING
    return have_pclmul;
#else
    return 0;
#endif
}

#endif
