/* sparq's LZ4 block compressor; see lz4.h. The block format's end rules: the last 5 bytes are literals, and the
 * last match starts at least 12 bytes before the end. */
#include "lz4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MIN_MATCH = 4, LAST_LITERALS = 5, MATCH_FIND_LIMIT = 12, MAX_OFFSET = 65535, HASH_LOG = 16 };

static uint32_t read32(const uint8_t* p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static uint32_t hash32(uint32_t v) { return (v * 2654435761u) >> (32 - HASH_LOG); }

/* The bytes after a 4-bit length field of 15: runs of 255, then the remainder. */
static uint8_t* put_length(uint8_t* op, size_t length) {
    for (; length >= 255; length -= 255) *op++ = 255;
    *op++ = (uint8_t)length;
    return op;
}

/* One sequence: `literals` bytes from `anchor`, then (when `match_length` >= MIN_MATCH) a match at `offset`.
 * Returns the end of the output, or NULL when it would pass `oend`. */
static uint8_t* put_sequence(uint8_t* op, const uint8_t* oend, const uint8_t* anchor, size_t literals,
                             size_t offset, size_t match_length) {
    size_t extra = match_length >= MIN_MATCH ? 2 + (match_length - MIN_MATCH) / 255 + 1 : 0;
    if ((size_t)(oend - op) < 1 + literals / 255 + 1 + literals + extra) return NULL;
    uint8_t* token = op++;
    *token = (uint8_t)((literals >= 15 ? 15 : literals) << 4);
    if (literals >= 15) op = put_length(op, literals - 15);
    memcpy(op, anchor, literals);
    op += literals;
    if (match_length >= MIN_MATCH) {
        size_t code = match_length - MIN_MATCH;
        *op++ = (uint8_t)(offset & 255);
        *op++ = (uint8_t)(offset >> 8);
        *token |= (uint8_t)(code >= 15 ? 15 : code);
        if (code >= 15) op = put_length(op, code - 15);
    }
    return op;
}

int LZ4_compressBound(int inputSize) {
    if (inputSize < 0 || inputSize > LZ4_MAX_INPUT_SIZE) return 0;
    return inputSize + inputSize / 255 + 16;
}

int LZ4_compress_default(const char* source, char* dest, int srcSize, int dstCapacity) {
    if (srcSize < 0 || srcSize > LZ4_MAX_INPUT_SIZE || dstCapacity < 0) return 0;
    const uint8_t *src = (const uint8_t*)source, *ip = src, *anchor = src, *end = src + srcSize;
    uint8_t *op = (uint8_t*)dest, *oend = op + dstCapacity;
    if (srcSize > MATCH_FIND_LIMIT) {
        uint32_t* table = calloc((size_t)1 << HASH_LOG, sizeof *table);  /* position + 1 of a sequence; 0: none */
        if (!table) return 0;
        const uint8_t *find_limit = end - MATCH_FIND_LIMIT, *match_limit = end - LAST_LITERALS;
        while (ip < find_limit) {
            uint32_t sequence = read32(ip), h = hash32(sequence), here = (uint32_t)(ip - src);
            uint32_t candidate = table[h];
            table[h] = here + 1;
            if (candidate && here + 1 - candidate <= MAX_OFFSET && read32(src + candidate - 1) == sequence) {
                const uint8_t *match = src + candidate - 1, *scan = ip + MIN_MATCH, *from = match + MIN_MATCH;
                while (scan < match_limit && *scan == *from) scan++, from++;
                op = put_sequence(op, oend, anchor, (size_t)(ip - anchor), (size_t)(ip - match),
                                  (size_t)(scan - ip));
                if (!op) {
                    free(table);
                    return 0;
                }
                ip = anchor = scan;
            } else {
                ip++;
            }
        }
        free(table);
    }
    op = put_sequence(op, oend, anchor, (size_t)(end - anchor), 0, 0);
    return op ? (int)(op - (uint8_t*)dest) : 0;
}
