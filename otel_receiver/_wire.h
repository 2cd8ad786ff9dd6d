/*
 * Reading the protobuf wire format of OTLP messages, shared by the C extensions
 * (exporters/clickhouse/_rows.c, otel_receiver/_spanscan.c).
 *
 * Why by hand: the extensions read serialized requests without building protobuf
 * objects (upb's C API is not exported by the protobuf Python package), and only a
 * handful of field kinds occur in OTLP. Nothing is read outside the given buffer;
 * malformed input makes the functions return -1.
 */
#ifndef OTEL_RECEIVER_WIRE_H
#define OTEL_RECEIVER_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ protobuf wire */

typedef struct {
    uint32_t number;
    uint32_t wire_type;
    uint64_t scalar;     /* varint, fixed64 or fixed32 value */
    const uint8_t *data; /* length-delimited payload */
    size_t len;
} Field;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} Reader;

/* Inlined into every field loop: a call per field costs more than reading it. */
#define WIRE_INLINE static inline __attribute__((always_inline))

WIRE_INLINE int read_varint(Reader *r, uint64_t *out) {
    if (r->p < r->end && !(*r->p & 0x80)) { /* one byte: tags, lengths under 128 */
        *out = *r->p++;
        return 0;
    }
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t byte = *r->p++;
        v |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

/* 1: a field was read, 0: end of message, -1: malformed. */
WIRE_INLINE int next_field(Reader *r, Field *f) {
    if (r->p >= r->end) return 0;
    uint64_t tag;
    if (read_varint(r, &tag) < 0) return -1;
    f->number = (uint32_t)(tag >> 3);
    f->wire_type = (uint32_t)(tag & 7);
    if (f->number == 0) return -1;
    f->data = NULL;
    f->len = 0;
    f->scalar = 0;
    switch (f->wire_type) {
    case 0:
        return read_varint(r, &f->scalar) < 0 ? -1 : 1;
    case 1:
        if (r->end - r->p < 8) return -1;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* one load: the byte loop below was not merged into one and cost a twentieth of
         * the span metrics' read (a span's start and end times) */
        memcpy(&f->scalar, r->p, 8);
#else
        for (int i = 0; i < 8; i++) f->scalar |= (uint64_t)r->p[i] << (8 * i);
#endif
        r->p += 8;
        return 1;
    case 5:
        if (r->end - r->p < 4) return -1;
        for (int i = 0; i < 4; i++) f->scalar |= (uint64_t)r->p[i] << (8 * i);
        r->p += 4;
        return 1;
    case 2: {
        uint64_t n;
        if (read_varint(r, &n) < 0 || n > (uint64_t)(r->end - r->p)) return -1;
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return 1;
    }
    default: /* groups (3, 4) are not used by OTLP */
        return -1;
    }
}

/* Bytes of v as a (minimal) varint. */
static inline size_t varint_size(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline Reader reader(const uint8_t *data, size_t len) {
    Reader r = {data, data + len};
    return r;
}

/* -------------------------------------------------------------------- AnyValue */

enum { V_UNSET = 0, V_STRING = 1, V_BOOL = 2, V_INT = 3, V_DOUBLE = 4, V_ARRAY = 5, V_KVLIST = 6, V_BYTES = 7 };

typedef struct {
    int kind;
    uint64_t scalar;
    const uint8_t *data;
    size_t len;
    /* An array or kvlist member right after the same member: the parser merges the two
     * (their elements concatenated), while `data` holds the last one only. Protobuf
     * never writes this; a client may. */
    int merged;
} Value;

static __attribute__((noinline, unused)) int parse_value_fields(const uint8_t *data, size_t len, Value *v) {
    Reader r = reader(data, len);
    Field f;
    int rc;
    v->kind = V_UNSET;
    v->data = NULL;
    v->len = 0;
    while ((rc = next_field(&r, &f)) > 0) {
        int ok;
        switch (f.number) {
        case V_STRING: case V_ARRAY: case V_KVLIST: case V_BYTES: ok = f.wire_type == 2; break;
        case V_BOOL: case V_INT: ok = f.wire_type == 0; break;
        case V_DOUBLE: ok = f.wire_type == 1; break;
        default: continue; /* unknown fields are skipped, as protobuf does */
        }
        if (!ok) return -1;
        if ((f.number == V_ARRAY || f.number == V_KVLIST) && v->kind == (int)f.number) v->merged = 1;
        v->kind = (int)f.number;
        v->scalar = f.scalar;
        v->data = f.data;
        v->len = f.len;
    }
    return rc;
}

/* An AnyValue: 0, or -1 when malformed. Inlined for the case of most attribute values, a
 * short string_value alone as every library writes it; the field loop is out of line. */
WIRE_INLINE int parse_value(const uint8_t *data, size_t len, Value *v) {
    v->scalar = 0;
    v->merged = 0;
    if (len >= 2 && data[0] == 0x0A && data[1] < 0x80 && (size_t)data[1] + 2 == len) {
        v->kind = V_STRING;
        v->data = data + 2;
        v->len = data[1];
        return 0;
    }
    return parse_value_fields(data, len, v);
}

/* A KeyValue: its key and its (possibly absent) value. */
typedef struct {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    size_t index; /* position in its list: keeps the sort stable */
    /* How many value fields: from the second on, the parser merges them into one
     * AnyValue, while `value` holds the last one only (a client's encoding). */
    int values;
} Pair;

/* The encoding every protobuf library writes: the key (shorter than 128 bytes), then
 * at most one value, nothing else. 1 with `kv` filled when the bytes are that, else 0.
 * Attribute lists are most of a span's bytes: this reads a KeyValue without the general
 * field loop. */
static inline int simple_pair(const uint8_t *data, size_t len, Pair *kv) {
    if (len < 2 || data[0] != 0x0A || data[1] >= 0x80 || (size_t)data[1] + 2 > len) return 0;
    const uint8_t *p = data + 2 + data[1], *end = data + len;
    kv->key = data + 2;
    kv->key_len = data[1];
    if (p == end) {
        kv->value = (const uint8_t *)"";
        kv->value_len = 0;
        kv->values = 0;
        return 1;
    }
    if (*p != 0x12) return 0;
    Reader r = reader(p + 1, (size_t)(end - p - 1));
    uint64_t n;
    if (read_varint(&r, &n) < 0 || n != (uint64_t)(end - r.p)) return 0;
    kv->value = r.p;
    kv->value_len = (size_t)n;
    kv->values = 1;
    return 1;
}

static inline int parse_pair(const uint8_t *data, size_t len, Pair *kv) {
    if (simple_pair(data, len, kv)) return 0;
    Reader r = reader(data, len);
    Field f;
    int rc;
    kv->key = (const uint8_t *)"";
    kv->key_len = 0;
    kv->value = (const uint8_t *)"";
    kv->value_len = 0;
    kv->values = 0;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number == 1 || f.number == 2) {
            if (f.wire_type != 2) return -1;
            if (f.number == 1) {
                kv->key = f.data;
                kv->key_len = f.len;
            } else {
                kv->value = f.data;
                kv->value_len = f.len;
                kv->values++;
            }
        }
    }
    return rc;
}

typedef struct {
    const uint8_t *data;
    size_t len;
} Slice;

/* The payload of the last length-delimited field `number` of a message ("" if none). */
static inline int find_bytes(const uint8_t *msg, size_t len, uint32_t number, Slice *out) {
    Reader r = reader(msg, len);
    Field f;
    int rc;
    out->data = (const uint8_t *)"";
    out->len = 0;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != number) continue;
        if (f.wire_type != 2) return -1;
        out->data = f.data;
        out->len = f.len;
    }
    return rc;
}

/* find_bytes for a singular message field: -1 also when it occurs more than once,
 * which protobuf never writes and the parser reads as the merge of the occurrences. */
static inline int find_single(const uint8_t *msg, size_t len, uint32_t number, Slice *out) {
    Reader r = reader(msg, len);
    Field f;
    int rc, seen = 0;
    out->data = (const uint8_t *)"";
    out->len = 0;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != number) continue;
        if (f.wire_type != 2 || seen++) return -1;
        out->data = f.data;
        out->len = f.len;
    }
    return rc;
}

/* ---------------------------------------------------------------- text hashing */

/* For the C extensions' hash tables keyed by texts (series keys, metric labels); not
 * persisted, so the function may change between versions. */
static inline uint64_t hash_mix(uint64_t h, uint64_t v) {
    h = (h ^ v) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

/* The last 1-7 bytes as a word, read in place: copying them into a zeroed word first
 * stalls the load on the stores (perf put a tenth of the span metrics' walk there; the
 * gain end to end was within noise). For a given n the bytes read cover all n, so equal
 * words mean equal bytes. */
static inline uint64_t hash_tail(const uint8_t *p, size_t n) {
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        return (uint64_t)lo | (uint64_t)hi << 32;
    }
    return (uint64_t)p[0] | (uint64_t)p[n >> 1] << 8 | (uint64_t)p[n - 1] << 16;
}

/* Folds n bytes, and n itself, into h. */
static inline uint64_t hash_text(uint64_t h, const uint8_t *p, size_t n) {
    h = hash_mix(h, n);
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = hash_mix(h, v);
    }
    return n ? hash_mix(h, hash_tail(p, n)) : h;
}

#endif
