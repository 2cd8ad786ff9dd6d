/*
 * Rows of otel_traces as a block in ClickHouse's Native (columnar) format, straight
 * from serialized ExportTraceServiceRequest messages.
 *
 * Why by hand, in C: the SQL insert path (columns.py) has ClickHouse decode the
 * protobuf and build the columns in a materialized view, which costs ~10 us of CPU
 * per span plus ~45 ms of query analysis per insert; building the rows here costs a
 * fraction of that, with the GIL released. No library turns OTLP into ClickHouse rows
 * with the Collector exporter's value encoding (pcommon.Value.AsString), and a Python
 * loop over every attribute of every span is slower than the whole insert.
 *
 * The encoding is the one columns.py documents, and the tests compare the rows of
 * both paths column by column:
 *  - ids as lowercase hex, "" when empty or all zero;
 *  - SpanKind and StatusCode names, "" for values outside the enum;
 *  - attribute values as strings: ints in decimal, doubles in the ECMAScript format
 *    Go uses (1e+21 for big exponents), bools true/false, bytes in base64, arrays and
 *    maps as JSON with map keys sorted and Go's HTML escapes;
 *  - Duration = end - start, 0 when the end precedes the start.
 *
 * Input comes from protobuf's own serializer, so each singular field appears once;
 * when a field is repeated anyway the last one wins (protobuf would merge messages).
 * Malformed input raises ValueError; nothing is read outside the buffers.
 *
 * Two passes: the first locates every row and its sorting key, the second writes the
 * rows in key order (see "row order" below).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "_wire.h" /* otel_receiver/_wire.h */

/* AnyValue nesting beyond this is refused (protobuf's own parser stops at 100). */
#define MAX_DEPTH 100

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    int failed; /* out of memory */
} Buf;

static int buf_reserve(Buf *b, size_t extra) {
    if (b->failed) return -1;
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *data = realloc(b->data, cap);
    if (data == NULL) {
        b->failed = 1;
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static void put(Buf *b, const void *src, size_t n) {
    if (n == 0 || buf_reserve(b, n) < 0) return;
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void put_byte(Buf *b, char c) {
    if (buf_reserve(b, 1) < 0) return;
    b->data[b->len++] = c;
}

static void put_cstr(Buf *b, const char *s) { put(b, s, strlen(s)); }

/* ClickHouse's VarUInt is the same LEB128 as protobuf's varint. */
static void put_varuint(Buf *b, uint64_t v) {
    char tmp[10];
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7F;
        v >>= 7;
        if (v) byte |= 0x80;
        tmp[n++] = (char)byte;
    } while (v);
    put(b, tmp, n);
}

static void put_u64le(Buf *b, uint64_t v) {
    char tmp[8];
    for (int i = 0; i < 8; i++) tmp[i] = (char)(v >> (8 * i));
    put(b, tmp, 8);
}

/* A String value in Native and RowBinary: its length, then its bytes. */
static void put_string(Buf *b, const uint8_t *s, size_t n) {
    put_varuint(b, n);
    put(b, s, n);
}

/* ----------------------------------------------------------------- value text */

static void put_int64(Buf *b, int64_t v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    put(b, tmp, (size_t)n);
}

/* The shortest decimal digits that read back as x, and its exponent: x = 0.DIGITS x
 * 10^point. Correctly rounded printf output at increasing precision; at a power of
 * two the interval below x is half as wide, so the digit string one unit above is
 * tried as well. */
static int shortest_digits(double x, char *digits, int *point) {
    char text[40];
    for (int precision = 0; precision < 17; precision++) {
        snprintf(text, sizeof text, "%.*e", precision, x);
        int ok = strtod(text, NULL) == x;
        char candidate[40];
        if (!ok) {
            /* digits of text + one unit in the last place */
            char *e = strchr(text, 'e');
            int n = 0;
            for (char *c = text; c < e; c++)
                if (*c >= '0' && *c <= '9') candidate[n++] = *c;
            int i = n - 1;
            while (i >= 0 && candidate[i] == '9') candidate[i--] = '0';
            if (i < 0) continue; /* 9.99 -> 10.0 changes the exponent: not needed here */
            candidate[i]++;
            char retry[48];
            int exponent = atoi(e + 1);
            int m = snprintf(retry, sizeof retry, "%c", candidate[0]);
            if (n > 1) m += snprintf(retry + m, sizeof retry - m, ".%.*s", n - 1, candidate + 1);
            snprintf(retry + m, sizeof retry - m, "e%d", exponent);
            if (strtod(retry, NULL) == x) {
                memcpy(text, retry, sizeof retry < sizeof text ? sizeof retry : sizeof text);
                text[sizeof text - 1] = 0;
                ok = 1;
            }
        }
        if (ok) break;
    }
    /* text is d[.ddd]e[+-]N */
    char *e = strchr(text, 'e');
    int n = 0;
    for (char *c = text; c < e; c++)
        if (*c >= '0' && *c <= '9') digits[n++] = *c;
    while (n > 1 && digits[n - 1] == '0') n--;
    digits[n] = 0;
    *point = atoi(e + 1) + 1;
    return n;
}

/* A finite double as Go's encoding/json (ECMAScript rules) writes it. */
static void put_float(Buf *b, double x) {
    if (x == 0.0) {
        put_cstr(b, signbit(x) ? "-0" : "0");
        return;
    }
    if (x < 0) {
        put_byte(b, '-');
        x = -x;
    }
    char digits[40];
    int n;
    int k = shortest_digits(x, digits, &n);
    if (k <= n && n <= 21) {
        put(b, digits, (size_t)k);
        for (int i = 0; i < n - k; i++) put_byte(b, '0');
    } else if (0 < n && n <= 21) {
        put(b, digits, (size_t)n);
        put_byte(b, '.');
        put(b, digits + n, (size_t)(k - n));
    } else if (-6 < n && n <= 0) {
        put_cstr(b, "0.");
        for (int i = 0; i < -n; i++) put_byte(b, '0');
        put(b, digits, (size_t)k);
    } else {
        int e = n - 1;
        put_byte(b, digits[0]);
        if (k > 1) {
            put_byte(b, '.');
            put(b, digits + 1, (size_t)(k - 1));
        }
        char tmp[16];
        int m = snprintf(tmp, sizeof tmp, "e%c%d", e > 0 ? '+' : '-', e > 0 ? e : -e);
        put(b, tmp, (size_t)m);
    }
}

static double as_double(uint64_t bits) {
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static void put_base64(Buf *b, const uint8_t *s, size_t n) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (buf_reserve(b, (n + 2) / 3 * 4) < 0) return;
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t t = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = alphabet[t >> 18];
        *o++ = alphabet[(t >> 12) & 63];
        *o++ = alphabet[(t >> 6) & 63];
        *o++ = alphabet[t & 63];
    }
    if (i < n) {
        uint32_t t = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = alphabet[t >> 18];
        *o++ = alphabet[(t >> 12) & 63];
        *o++ = i + 1 < n ? alphabet[(t >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
}

/* A JSON string with ClickHouse's toJSONString escapes (other control characters as
 * \u00XX, uppercase) and Go's (no \/, but <, >, &, U+2028 and U+2029 escaped). */
static void put_json_string(Buf *b, const uint8_t *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    put_byte(b, '"');
    size_t plain = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        const char *escape = NULL;
        char tmp[8];
        size_t skip = 1;
        switch (c) {
        case '"': escape = "\\\""; break;
        case '\\': escape = "\\\\"; break;
        case '\b': escape = "\\b"; break;
        case '\f': escape = "\\f"; break;
        case '\n': escape = "\\n"; break;
        case '\r': escape = "\\r"; break;
        case '\t': escape = "\\t"; break;
        case '<': escape = "\\u003c"; break;
        case '>': escape = "\\u003e"; break;
        case '&': escape = "\\u0026"; break;
        case 0xE2:
            if (i + 2 < n && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
                escape = s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
                skip = 3;
            }
            break;
        default:
            if (c < 0x20) {
                tmp[0] = '\\';
                tmp[1] = 'u';
                tmp[2] = '0';
                tmp[3] = '0';
                tmp[4] = hex[c >> 4];
                tmp[5] = hex[c & 15];
                tmp[6] = 0;
                escape = tmp;
            }
        }
        if (escape != NULL) {
            put(b, s + plain, i - plain);
            put_cstr(b, escape);
            i += skip - 1;
            plain = i + 1;
        }
    }
    put(b, s + plain, n - plain);
    put_byte(b, '"');
}

static int compare_pairs(const void *a, const void *b) {
    const Pair *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    if (c) return c;
    if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

static int put_json(Buf *b, const uint8_t *data, size_t len, int depth);

/* Elements of an ArrayValue or the entries of a KeyValueList, in JSON. */
static int put_json_container(Buf *b, const Value *v, int depth) {
    if (depth > MAX_DEPTH) return -2;
    Reader r = reader(v->data, v->len);
    Field f;
    int rc;
    if (v->kind == V_ARRAY) {
        int first = 1;
        put_byte(b, '[');
        while ((rc = next_field(&r, &f)) > 0) {
            if (f.number != 1) continue;
            if (f.wire_type != 2) return -1;
            if (!first) put_byte(b, ',');
            first = 0;
            if ((rc = put_json(b, f.data, f.len, depth + 1)) < 0) return rc;
        }
        put_byte(b, ']');
        return rc;
    }
    size_t count = 0;
    while ((rc = next_field(&r, &f)) > 0) count += f.number == 1;
    if (rc < 0) return rc;
    Pair *pairs = count ? malloc(count * sizeof *pairs) : NULL;
    if (count && pairs == NULL) {
        b->failed = 1;
        return -1;
    }
    r = reader(v->data, v->len);
    size_t i = 0;
    while ((rc = next_field(&r, &f)) > 0 && i < count) {
        if (f.number != 1) continue;
        if (f.wire_type != 2 || parse_pair(f.data, f.len, &pairs[i]) < 0 || pairs[i].values > 1) {
            free(pairs);
            return -1;
        }
        pairs[i].index = i;
        i++;
    }
    qsort(pairs, count, sizeof *pairs, compare_pairs);
    put_byte(b, '{');
    rc = 0;
    for (i = 0; i < count && rc >= 0; i++) {
        if (i) put_byte(b, ',');
        put_json_string(b, pairs[i].key, pairs[i].key_len);
        put_byte(b, ':');
        rc = put_json(b, pairs[i].value, pairs[i].value_len, depth + 1);
    }
    free(pairs);
    put_byte(b, '}');
    return rc < 0 ? rc : 0;
}

/* An AnyValue as a JSON element (inside an array or map). */
static int put_json(Buf *b, const uint8_t *data, size_t len, int depth) {
    Value v;
    if (parse_value(data, len, &v) < 0 || v.merged) return -1;
    switch (v.kind) {
    case V_STRING: put_json_string(b, v.data, v.len); return 0;
    case V_INT: put_int64(b, (int64_t)v.scalar); return 0;
    case V_DOUBLE: {
        double d = as_double(v.scalar);
        if (isfinite(d)) put_float(b, d);
        else put_cstr(b, "null");
        return 0;
    }
    case V_BOOL: put_cstr(b, v.scalar ? "true" : "false"); return 0;
    case V_BYTES:
        put_byte(b, '"');
        put_base64(b, v.data, v.len);
        put_byte(b, '"');
        return 0;
    case V_ARRAY: case V_KVLIST: return put_json_container(b, &v, depth);
    default: put_cstr(b, "null"); return 0;
    }
}

/* pcommon.Value.AsString of an AnyValue. */
static int put_value_text(Buf *b, const uint8_t *data, size_t len) {
    Value v;
    if (parse_value(data, len, &v) < 0 || v.merged) return -1;
    switch (v.kind) {
    case V_STRING: put(b, v.data, v.len); return 0;
    case V_INT: put_int64(b, (int64_t)v.scalar); return 0;
    case V_DOUBLE: {
        double d = as_double(v.scalar);
        if (isfinite(d)) put_float(b, d);
        else put_cstr(b, isnan(d) ? "json: unsupported value: NaN"
                                  : d > 0 ? "json: unsupported value: +Inf" : "json: unsupported value: -Inf");
        return 0;
    }
    case V_BOOL: put_cstr(b, v.scalar ? "true" : "false"); return 0;
    case V_BYTES: put_base64(b, v.data, v.len); return 0;
    case V_ARRAY: case V_KVLIST: return put_json_container(b, &v, 0);
    default: return 0;
    }
}

/* ------------------------------------------------------------------ rows */

/* The data of the block, one stream per column part: Native is columnar, so each
 * column's values (and each Map's or Array's offsets, keys and values) are written
 * to their own buffer and concatenated at the end. */
enum {
    S_TIMESTAMP, S_TRACE_ID, S_SPAN_ID, S_PARENT_SPAN_ID, S_TRACE_STATE, S_NAME, S_KIND, S_SERVICE,
    S_RES_OFFSETS, S_RES_KEYS, S_RES_VALUES, S_SCOPE_NAME, S_SCOPE_VERSION,
    S_ATTR_OFFSETS, S_ATTR_KEYS, S_ATTR_VALUES, S_DURATION, S_STATUS_CODE, S_STATUS_MESSAGE,
    S_EV_OFFSETS, S_EV_TIME, S_EV_NAME, S_EV_ATTR_OFFSETS, S_EV_ATTR_KEYS, S_EV_ATTR_VALUES,
    S_LN_OFFSETS, S_LN_TRACE_ID, S_LN_SPAN_ID, S_LN_TRACE_STATE, S_LN_ATTR_OFFSETS, S_LN_ATTR_KEYS,
    S_LN_ATTR_VALUES,
    N_STREAMS
};

/* Logs use the same buffers, numbered on their own. */
enum {
    L_TIMESTAMP, L_TRACE_ID, L_SPAN_ID, L_FLAGS, L_SEVERITY_TEXT, L_SEVERITY_NUMBER, L_SERVICE, L_BODY,
    L_RES_SCHEMA_URL, L_RES_OFFSETS, L_RES_KEYS, L_RES_VALUES, L_SCOPE_SCHEMA_URL, L_SCOPE_NAME,
    L_SCOPE_VERSION, L_SCOPE_OFFSETS, L_SCOPE_KEYS, L_SCOPE_VALUES, L_ATTR_OFFSETS, L_ATTR_KEYS, L_ATTR_VALUES,
    L_EVENT_NAME,
    N_LOG_STREAMS
};

typedef struct {
    const char *name;
    const char *type;
    int streams[5]; /* ends at -1 */
} Column;

/* otel_traces' columns in table order. The types are the plain ones (String, not
 * LowCardinality(String)): ClickHouse converts a whole column at once on insert,
 * which costs far less than reading LowCardinality values one by one. */
static const Column TRACE_COLUMNS[] = {
    {"Timestamp", "DateTime64(9)", {S_TIMESTAMP, -1}},
    {"TraceId", "String", {S_TRACE_ID, -1}},
    {"SpanId", "String", {S_SPAN_ID, -1}},
    {"ParentSpanId", "String", {S_PARENT_SPAN_ID, -1}},
    {"TraceState", "String", {S_TRACE_STATE, -1}},
    {"SpanName", "String", {S_NAME, -1}},
    {"SpanKind", "String", {S_KIND, -1}},
    {"ServiceName", "String", {S_SERVICE, -1}},
    {"ResourceAttributes", "Map(String, String)", {S_RES_OFFSETS, S_RES_KEYS, S_RES_VALUES, -1}},
    {"ScopeName", "String", {S_SCOPE_NAME, -1}},
    {"ScopeVersion", "String", {S_SCOPE_VERSION, -1}},
    {"SpanAttributes", "Map(String, String)", {S_ATTR_OFFSETS, S_ATTR_KEYS, S_ATTR_VALUES, -1}},
    {"Duration", "UInt64", {S_DURATION, -1}},
    {"StatusCode", "String", {S_STATUS_CODE, -1}},
    {"StatusMessage", "String", {S_STATUS_MESSAGE, -1}},
    {"Events.Timestamp", "Array(DateTime64(9))", {S_EV_OFFSETS, S_EV_TIME, -1}},
    {"Events.Name", "Array(String)", {S_EV_OFFSETS, S_EV_NAME, -1}},
    {"Events.Attributes", "Array(Map(String, String))",
     {S_EV_OFFSETS, S_EV_ATTR_OFFSETS, S_EV_ATTR_KEYS, S_EV_ATTR_VALUES, -1}},
    {"Links.TraceId", "Array(String)", {S_LN_OFFSETS, S_LN_TRACE_ID, -1}},
    {"Links.SpanId", "Array(String)", {S_LN_OFFSETS, S_LN_SPAN_ID, -1}},
    {"Links.TraceState", "Array(String)", {S_LN_OFFSETS, S_LN_TRACE_STATE, -1}},
    {"Links.Attributes", "Array(Map(String, String))",
     {S_LN_OFFSETS, S_LN_ATTR_OFFSETS, S_LN_ATTR_KEYS, S_LN_ATTR_VALUES, -1}},
};
#define N_TRACE_COLUMNS (sizeof TRACE_COLUMNS / sizeof TRACE_COLUMNS[0])

/* otel_logs' columns but TimestampTime, which ClickHouse computes (its DEFAULT). */
static const Column LOG_COLUMNS[] = {
    {"Timestamp", "DateTime64(9)", {L_TIMESTAMP, -1}},
    {"TraceId", "String", {L_TRACE_ID, -1}},
    {"SpanId", "String", {L_SPAN_ID, -1}},
    {"TraceFlags", "UInt8", {L_FLAGS, -1}},
    {"SeverityText", "String", {L_SEVERITY_TEXT, -1}},
    {"SeverityNumber", "UInt8", {L_SEVERITY_NUMBER, -1}},
    {"ServiceName", "String", {L_SERVICE, -1}},
    {"Body", "String", {L_BODY, -1}},
    {"ResourceSchemaUrl", "String", {L_RES_SCHEMA_URL, -1}},
    {"ResourceAttributes", "Map(String, String)", {L_RES_OFFSETS, L_RES_KEYS, L_RES_VALUES, -1}},
    {"ScopeSchemaUrl", "String", {L_SCOPE_SCHEMA_URL, -1}},
    {"ScopeName", "String", {L_SCOPE_NAME, -1}},
    {"ScopeVersion", "String", {L_SCOPE_VERSION, -1}},
    {"ScopeAttributes", "Map(String, String)", {L_SCOPE_OFFSETS, L_SCOPE_KEYS, L_SCOPE_VALUES, -1}},
    {"LogAttributes", "Map(String, String)", {L_ATTR_OFFSETS, L_ATTR_KEYS, L_ATTR_VALUES, -1}},
    {"EventName", "String", {L_EVENT_NAME, -1}},
};
#define N_LOG_COLUMNS (sizeof LOG_COLUMNS / sizeof LOG_COLUMNS[0])

typedef struct {
    Buf s[N_STREAMS];
    Buf scratch; /* one value's text, before its length is known */
    /* The last block handed out, reused once nothing but the encoder holds it (see
     * native_block); block_capacity is the size it was allocated with. */
    PyObject *block;
    size_t block_capacity;
    /* Running totals: Native offsets are cumulative over the block. */
    uint64_t rows, res_entries, scope_entries, attr_entries, events, ev_attr_entries, links, ln_attr_entries;
} Encoder;

static int encoder_failed(const Encoder *enc) {
    for (int i = 0; i < N_STREAMS; i++)
        if (enc->s[i].failed) return 1;
    return enc->scratch.failed;
}

/* With the GIL held (the block is a Python object). */
static void encoder_free(Encoder *enc) {
    for (int i = 0; i < N_STREAMS; i++) free(enc->s[i].data);
    free(enc->scratch.data);
    Py_CLEAR(enc->block);
}

/* Encoders are kept between calls with their buffers: a batch of 30,000 spans writes
 * ~60 MB into them, and memory fresh from the kernel costs a page fault and the zeroing
 * of every page, measured at ~30% of the encoding. As many as the exporter's consumers
 * encode at once are kept; taken and given back with the GIL held. */
#define KEPT_ENCODERS 2
static Encoder *kept_encoders[KEPT_ENCODERS];
static int n_kept_encoders;

static Encoder *encoder_take(void) {
    /* One whose last block is free again first, so that the block is reused: behind the
     * queue, the other consumer's insert may still hold the block of the encoder given
     * back last. */
    for (int i = n_kept_encoders - 1; i >= 0; i--) {
        Encoder *enc = kept_encoders[i];
        if (enc->block != NULL && Py_REFCNT(enc->block) == 1) {
            kept_encoders[i] = kept_encoders[--n_kept_encoders];
            return enc;
        }
    }
    if (n_kept_encoders > 0) return kept_encoders[--n_kept_encoders];
    return calloc(1, sizeof(Encoder));
}

/* Whether memory of `capacity` bytes is kept for a batch that needed `used`: light
 * traffic after a burst (batches of a few hundred kB) must not keep the burst's peak,
 * but under load, batches range from 10,000 to 50,000 spans behind the queue and a
 * buffer grows by doubling, so up to 10 times the need is normal. Letting such a
 * buffer go at 8 times (as before) made the next large batch fault its pages in
 * again: 10,000-15,000 faults per large batch in a sustained run. */
static int worth_keeping(size_t capacity, size_t used) { return capacity <= 16 * used + ((size_t)16 << 20); }

/* Emptied for the next batch; let go when no longer worth keeping. */
static void buf_empty(Buf *b) {
    if (!worth_keeping(b->cap, b->len)) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
    b->len = 0;
}

static void encoder_give_back(Encoder *enc) {
    if (encoder_failed(enc) || n_kept_encoders == KEPT_ENCODERS) {
        encoder_free(enc);
        free(enc);
        return;
    }
    Encoder kept = {0};
    for (int i = 0; i < N_STREAMS; i++) {
        buf_empty(&enc->s[i]);
        kept.s[i] = enc->s[i];
    }
    buf_empty(&enc->scratch);
    kept.scratch = enc->scratch;
    kept.block = enc->block;
    kept.block_capacity = enc->block_capacity;
    *enc = kept; /* the running totals back to zero */
    kept_encoders[n_kept_encoders++] = enc;
}

/* The KeyValue fields numbered `field` of a message, appended to `keys` and `values`
 * (String columns); returns how many, or -1. When `wanted` is given, the text of the
 * first entry with that key goes to `found`. */
static int64_t put_attributes(Encoder *enc, Buf *keys, Buf *values, const uint8_t *msg, size_t len, uint32_t field,
                              const char *wanted, Buf *found, int *was_found) {
    size_t wanted_len = wanted != NULL ? strlen(wanted) : 0;
    Reader r = reader(msg, len);
    Field f;
    int rc;
    int64_t count = 0;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != field) continue;
        Pair kv;
        Value v;
        if (f.wire_type != 2 || parse_pair(f.data, f.len, &kv) < 0 || kv.values > 1 ||
            parse_value(kv.value, kv.value_len, &v) < 0 || v.merged)
            return -1;
        put_string(keys, kv.key, kv.key_len);
        const uint8_t *text = v.data;
        size_t text_len = v.len;
        if (v.kind != V_STRING) { /* most values are strings: no copy through the scratch buffer */
            enc->scratch.len = 0;
            if ((rc = put_value_text(&enc->scratch, kv.value, kv.value_len)) < 0) return rc;
            if (enc->scratch.failed) return -1;
            text = (const uint8_t *)enc->scratch.data;
            text_len = enc->scratch.len;
        }
        put_string(values, text, text_len);
        if (wanted != NULL && !*was_found && kv.key_len == wanted_len && memcmp(kv.key, wanted, wanted_len) == 0) {
            *was_found = 1;
            put(found, text, text_len);
        }
        count++;
    }
    return rc < 0 ? rc : count;
}

static void put_hex_id(Buf *b, const uint8_t *id, size_t n, size_t size) {
    static const char hex[] = "0123456789abcdef";
    int zero = n == size;
    for (size_t i = 0; i < n && zero; i++) zero = id[i] == 0;
    if (n == 0 || zero) {
        put_varuint(b, 0);
        return;
    }
    put_varuint(b, 2 * n);
    if (buf_reserve(b, 2 * n) < 0) return;
    for (size_t i = 0; i < n; i++) {
        b->data[b->len++] = hex[id[i] >> 4];
        b->data[b->len++] = hex[id[i] & 15];
    }
}

static void put_enum_name(Buf *b, uint64_t raw, const char *const *names, int count) {
    int32_t value = (int32_t)(uint32_t)raw; /* an enum is an int32 on the wire */
    const char *name = value >= 0 && value < count ? names[value] : "";
    put_string(b, (const uint8_t *)name, strlen(name));
}

static const char *const SPAN_KINDS[] = {"Unspecified", "Internal", "Server", "Client", "Producer", "Consumer"};
static const char *const STATUS_CODES[] = {"Unset", "Ok", "Error"};

/* What a row takes from its resource: encoded once, copied into each of its rows. */
typedef struct {
    Buf res_keys, res_values;
    uint64_t res_entries;
    Buf service_name;
    Slice res_schema_url;
} Resource;

/* What a row takes from its scope. */
typedef struct {
    size_t resource; /* index into Rows.resources */
    Slice name, version, schema_url;
    Buf keys, values; /* logs only: the scope's attributes */
    uint64_t entries;
} Scope;

/* One span or log record, located and keyed in the first pass. */
typedef struct {
    const uint8_t *msg;
    size_t len;
    /* The sorting key: the service name, then (traces) the span name, then seconds and
     * nanoseconds of the row's Timestamp, then the input order. */
    const char *service;
    size_t service_len;
    Slice name;
    uint64_t seconds, time;
    size_t scope;   /* index into Rows.scopes */
    size_t request; /* which input request, for error messages */
    size_t seq;
} Row;

/* Everything the first pass found, for the second to write in key order. */
typedef struct {
    Resource *resources;
    size_t n_resources, cap_resources;
    Scope *scopes;
    size_t n_scopes, cap_scopes;
    Row *rows;
    size_t n_rows, cap_rows;
    size_t request;
    int failed; /* out of memory */
} Rows;

/* A new zeroed slot at the end of a growing array, or NULL when memory runs out. */
static void *append_slot(void **items, size_t *n, size_t *cap, size_t size, int *failed) {
    if (*n == *cap) {
        size_t new_cap = *cap ? *cap * 2 : 64;
        void *grown = realloc(*items, new_cap * size);
        if (grown == NULL) {
            *failed = 1;
            return NULL;
        }
        *items = grown;
        *cap = new_cap;
    }
    char *slot = (char *)*items + (*n)++ * size;
    memset(slot, 0, size);
    return slot;
}

static void rows_free(Rows *rows) {
    for (size_t i = 0; i < rows->n_resources; i++) {
        free(rows->resources[i].res_keys.data);
        free(rows->resources[i].res_values.data);
        free(rows->resources[i].service_name.data);
    }
    for (size_t i = 0; i < rows->n_scopes; i++) {
        free(rows->scopes[i].keys.data);
        free(rows->scopes[i].values.data);
    }
    free(rows->resources);
    free(rows->scopes);
    free(rows->rows);
}

typedef struct {
    Slice trace_id, span_id, trace_state, parent_span_id, name, status;
    uint64_t kind, start, end;
    uint64_t events, links; /* how many of each */
} SpanFields;

static int parse_span(const uint8_t *msg, size_t len, SpanFields *s) {
    memset(s, 0, sizeof *s);
    Slice *slices[16] = {0};
    slices[1] = &s->trace_id;
    slices[2] = &s->span_id;
    slices[3] = &s->trace_state;
    slices[4] = &s->parent_span_id;
    slices[5] = &s->name;
    slices[15] = &s->status;
    for (int i = 0; i < 16; i++)
        if (slices[i]) slices[i]->data = (const uint8_t *)"";
    Reader r = reader(msg, len);
    Field f;
    int rc, seen_status = 0;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number < 16 && slices[f.number] != NULL) {
            if (f.wire_type != 2) return -1;
            /* A status split over two fields: the parser merges them, this reads one. */
            if (f.number == 15 && seen_status++) return -1;
            slices[f.number]->data = f.data;
            slices[f.number]->len = f.len;
        } else if (f.number == 6) {
            if (f.wire_type != 0) return -1;
            s->kind = f.scalar;
        } else if (f.number == 7 || f.number == 8) {
            if (f.wire_type != 1) return -1;
            *(f.number == 7 ? &s->start : &s->end) = f.scalar;
        } else if (f.number == 9 || f.number == 11 || f.number == 13) {
            if (f.wire_type != 2) return -1;
            if (f.number == 11) s->events++;
            if (f.number == 13) s->links++;
        }
    }
    return rc;
}

static int put_events(Encoder *enc, const uint8_t *msg, size_t len) {
    Reader r = reader(msg, len);
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 11) continue;
        Reader er = reader(f.data, f.len);
        Field ef;
        uint64_t time = 0;
        Slice name = {(const uint8_t *)"", 0};
        while ((rc = next_field(&er, &ef)) > 0) {
            if (ef.number == 1) {
                if (ef.wire_type != 1) return -1;
                time = ef.scalar;
            } else if (ef.number == 2) {
                if (ef.wire_type != 2) return -1;
                name.data = ef.data;
                name.len = ef.len;
            }
        }
        if (rc < 0) return rc;
        put_u64le(&enc->s[S_EV_TIME], time);
        put_string(&enc->s[S_EV_NAME], name.data, name.len);
        int64_t n = put_attributes(enc, &enc->s[S_EV_ATTR_KEYS], &enc->s[S_EV_ATTR_VALUES], f.data, f.len, 3, NULL,
                                   NULL, NULL);
        if (n < 0) return (int)n;
        enc->ev_attr_entries += (uint64_t)n;
        put_u64le(&enc->s[S_EV_ATTR_OFFSETS], enc->ev_attr_entries);
    }
    return rc;
}

static int put_links(Encoder *enc, const uint8_t *msg, size_t len) {
    Reader r = reader(msg, len);
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 13) continue;
        Slice trace_id, span_id, trace_state;
        if (find_bytes(f.data, f.len, 1, &trace_id) < 0 || find_bytes(f.data, f.len, 2, &span_id) < 0 ||
            find_bytes(f.data, f.len, 3, &trace_state) < 0)
            return -1;
        put_hex_id(&enc->s[S_LN_TRACE_ID], trace_id.data, trace_id.len, 16);
        put_hex_id(&enc->s[S_LN_SPAN_ID], span_id.data, span_id.len, 8);
        put_string(&enc->s[S_LN_TRACE_STATE], trace_state.data, trace_state.len);
        int64_t n = put_attributes(enc, &enc->s[S_LN_ATTR_KEYS], &enc->s[S_LN_ATTR_VALUES], f.data, f.len, 4, NULL,
                                   NULL, NULL);
        if (n < 0) return (int)n;
        enc->ln_attr_entries += (uint64_t)n;
        put_u64le(&enc->s[S_LN_ATTR_OFFSETS], enc->ln_attr_entries);
    }
    return rc;
}

static int put_span(Encoder *enc, const Resource *res, const Scope *scope, const uint8_t *msg, size_t len) {
    Buf *s = enc->s;
    SpanFields span;
    int rc;
    if (parse_span(msg, len, &span) < 0) return -1;
    /* Status: message = 2, code = 3 */
    uint64_t code = 0;
    Slice status_message = {(const uint8_t *)"", 0};
    Reader r = reader(span.status.data, span.status.len);
    Field f;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number == 2) {
            if (f.wire_type != 2) return -1;
            status_message.data = f.data;
            status_message.len = f.len;
        } else if (f.number == 3) {
            if (f.wire_type != 0) return -1;
            code = f.scalar;
        }
    }
    if (rc < 0) return rc;
    int64_t n = put_attributes(enc, &s[S_ATTR_KEYS], &s[S_ATTR_VALUES], msg, len, 9, NULL, NULL, NULL);
    if (n < 0) return (int)n;
    enc->attr_entries += (uint64_t)n;
    put_u64le(&s[S_ATTR_OFFSETS], enc->attr_entries);
    if (span.events && (rc = put_events(enc, msg, len)) < 0) return rc;
    enc->events += span.events;
    put_u64le(&s[S_EV_OFFSETS], enc->events);
    if (span.links && (rc = put_links(enc, msg, len)) < 0) return rc;
    enc->links += span.links;
    put_u64le(&s[S_LN_OFFSETS], enc->links);

    put_u64le(&s[S_TIMESTAMP], span.start); /* DateTime64(9) is an Int64 of nanoseconds */
    put_hex_id(&s[S_TRACE_ID], span.trace_id.data, span.trace_id.len, 16);
    put_hex_id(&s[S_SPAN_ID], span.span_id.data, span.span_id.len, 8);
    put_hex_id(&s[S_PARENT_SPAN_ID], span.parent_span_id.data, span.parent_span_id.len, 8);
    put_string(&s[S_TRACE_STATE], span.trace_state.data, span.trace_state.len);
    put_string(&s[S_NAME], span.name.data, span.name.len);
    put_enum_name(&s[S_KIND], span.kind, SPAN_KINDS, 6);
    put_string(&s[S_SERVICE], (const uint8_t *)res->service_name.data, res->service_name.len);
    put(&s[S_RES_KEYS], res->res_keys.data, res->res_keys.len);
    put(&s[S_RES_VALUES], res->res_values.data, res->res_values.len);
    enc->res_entries += res->res_entries;
    put_u64le(&s[S_RES_OFFSETS], enc->res_entries);
    put_string(&s[S_SCOPE_NAME], scope->name.data, scope->name.len);
    put_string(&s[S_SCOPE_VERSION], scope->version.data, scope->version.len);
    put_u64le(&s[S_DURATION], span.end > span.start ? span.end - span.start : 0);
    put_enum_name(&s[S_STATUS_CODE], code, STATUS_CODES, 3);
    put_string(&s[S_STATUS_MESSAGE], status_message.data, status_message.len);
    enc->rows++;
    return 0;
}

/* A new Resource for the resource message of `msg` (field 1): its attributes and its
 * service.name; with `schema_url_field`, its schema URL too. */
static int collect_resource(Encoder *enc, Rows *rows, const uint8_t *msg, size_t len, uint32_t schema_url_field) {
    Resource *res = append_slot((void **)&rows->resources, &rows->n_resources, &rows->cap_resources, sizeof *res,
                                &rows->failed);
    if (res == NULL) return -1;
    Slice resource;
    res->res_schema_url.data = (const uint8_t *)"";
    if (find_single(msg, len, 1, &resource) < 0) return -1;
    if (schema_url_field && find_bytes(msg, len, schema_url_field, &res->res_schema_url) < 0) return -1;
    int found = 0;
    int64_t n = put_attributes(enc, &res->res_keys, &res->res_values, resource.data, resource.len, 1, "service.name",
                               &res->service_name, &found);
    if (n < 0) return (int)n;
    res->res_entries = (uint64_t)n;
    if (res->res_keys.failed || res->res_values.failed || res->service_name.failed) {
        rows->failed = 1;
        return -1;
    }
    return 0;
}

static Scope *new_scope(Rows *rows) {
    Scope *scope =
        append_slot((void **)&rows->scopes, &rows->n_scopes, &rows->cap_scopes, sizeof *scope, &rows->failed);
    if (scope != NULL) scope->resource = rows->n_resources - 1;
    return scope;
}

static Row *new_row(Rows *rows, const uint8_t *msg, size_t len) {
    Row *row = append_slot((void **)&rows->rows, &rows->n_rows, &rows->cap_rows, sizeof *row, &rows->failed);
    if (row == NULL) return NULL;
    const Resource *res = &rows->resources[rows->n_resources - 1];
    row->msg = msg;
    row->len = len;
    row->service = res->service_name.data;
    row->service_len = res->service_name.len;
    row->name.data = (const uint8_t *)"";
    row->scope = rows->n_scopes - 1;
    row->request = rows->request;
    row->seq = rows->n_rows - 1;
    return row;
}

/* Asks for the cache lines of a span or log record (up to 4 kB: a longer value is then
 * copied as a stream, which the hardware prefetches itself) before they are read. Both
 * passes skip over values by their length, so each field header read was a cache miss
 * of its own, and the second pass visits the rows in key order, scattered over the
 * input. Measured per 30,000-span batch: ~10 ms less in the first pass, ~6 ms less in
 * the second (of ~75 ms). */
static void prefetch_message(const uint8_t *msg, size_t len) {
    size_t end = len < 4096 ? len : 4096;
    for (size_t o = 0; o < end; o += 64) __builtin_prefetch(msg + o);
}

static int collect_resource_spans(Encoder *enc, Rows *rows, const uint8_t *msg, size_t len) {
    int rc = collect_resource(enc, rows, msg, len, 0);
    if (rc < 0) return rc;
    Reader r = reader(msg, len);
    Field f;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 2) continue;
        Slice scope_message;
        Scope *scope = new_scope(rows);
        if (scope == NULL || f.wire_type != 2 || find_single(f.data, f.len, 1, &scope_message) < 0 ||
            find_bytes(scope_message.data, scope_message.len, 1, &scope->name) < 0 ||
            find_bytes(scope_message.data, scope_message.len, 2, &scope->version) < 0)
            return -1;
        Reader sr = reader(f.data, f.len);
        Field sf;
        while ((rc = next_field(&sr, &sf)) > 0) {
            if (sf.number != 2) continue;
            SpanFields span;
            Row *row;
            prefetch_message(sf.data, sf.len);
            if (sf.wire_type != 2 || parse_span(sf.data, sf.len, &span) < 0 ||
                (row = new_row(rows, sf.data, sf.len)) == NULL)
                return -1;
            row->name = span.name;
            row->seconds = span.start / 1000000000u;
            row->time = span.start;
        }
        if (rc < 0) return rc;
    }
    return rc;
}

typedef int (*ResourcePart)(Encoder *enc, Rows *rows, const uint8_t *msg, size_t len);

/* An Export*ServiceRequest: its resource parts (field 1). */
static int collect_request(Encoder *enc, Rows *rows, const uint8_t *msg, size_t len, ResourcePart part) {
    Reader r = reader(msg, len);
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 1) continue;
        if (f.wire_type != 2) return -1;
        if ((rc = part(enc, rows, f.data, f.len)) < 0) return rc;
    }
    return rc;
}

/* ------------------------------------------------------------------ row order
 *
 * Rows are written in the order of the table's sorting key (otel_traces: ServiceName,
 * SpanName, toDateTime(Timestamp); otel_logs: ServiceName, TimestampTime, Timestamp).
 * ClickHouse checks whether an inserted block is already sorted and then skips its own
 * sort, a permutation of every column: measured 106-125 -> 93-95 ms of CPU per
 * 10,000-span insert. Strings compare as ClickHouse compares them (bytes, then length).
 * Where our order and the engine's could differ (times beyond 2106), ClickHouse finds
 * the block unsorted and sorts it itself, so the order is an optimisation only. */

static int compare_bytes(const void *a, size_t a_len, const void *b, size_t b_len) {
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0) return c;
    return (a_len > b_len) - (a_len < b_len);
}

static int compare_u64(uint64_t a, uint64_t b) { return (a > b) - (a < b); }

static int compare_rows(const void *pa, const void *pb) {
    const Row *a = pa, *b = pb;
    int c = compare_bytes(a->service, a->service_len, b->service, b->service_len);
    if (c == 0) c = compare_bytes(a->name.data, a->name.len, b->name.data, b->name.len);
    if (c == 0) c = compare_u64(a->seconds, b->seconds);
    if (c == 0) c = compare_u64(a->time, b->time);
    if (c == 0) c = compare_u64(a->seq, b->seq); /* stable: the input order among equals */
    return c;
}

static void sort_rows(Rows *rows) {
    for (size_t i = 1; i < rows->n_rows; i++) {
        if (compare_rows(&rows->rows[i - 1], &rows->rows[i]) > 0) {
            qsort(rows->rows, rows->n_rows, sizeof *rows->rows, compare_rows);
            return;
        }
    }
}

typedef int (*RowWriter)(Encoder *enc, const Resource *res, const Scope *scope, const uint8_t *msg, size_t len);

/* Writes the collected rows in key order; on failure, `failed_at` is the request the
 * failing row came from. */
static int write_rows(Encoder *enc, Rows *rows, RowWriter write, size_t *failed_at) {
    sort_rows(rows);
    for (size_t i = 0; i < rows->n_rows; i++) {
        if (i + 2 < rows->n_rows) prefetch_message(rows->rows[i + 2].msg, rows->rows[i + 2].len);
        const Row *row = &rows->rows[i];
        const Scope *scope = &rows->scopes[row->scope];
        int rc = write(enc, &rows->resources[scope->resource], scope, row->msg, row->len);
        if (rc < 0) {
            *failed_at = row->request;
            return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ logs */

/* The Timestamp column of a log record: its time, or its observed time when unset. */
static int log_record_time(const uint8_t *msg, size_t len, uint64_t *out) {
    uint64_t time = 0, observed = 0;
    Reader r = reader(msg, len);
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 1 && f.number != 11) continue;
        if (f.wire_type != 1) return -1;
        *(f.number == 1 ? &time : &observed) = f.scalar;
    }
    *out = time != 0 ? time : observed;
    return rc;
}

static int put_log_record(Encoder *enc, const Resource *res, const Scope *scope, const uint8_t *msg, size_t len) {
    Buf *s = enc->s;
    uint64_t time = 0, observed = 0, severity = 0, flags = 0;
    Slice severity_text = {(const uint8_t *)"", 0}, body = {(const uint8_t *)"", 0};
    Slice trace_id = severity_text, span_id = severity_text, event_name = severity_text;
    Reader r = reader(msg, len);
    Field f;
    int rc, seen_body = 0;
    while ((rc = next_field(&r, &f)) > 0) {
        Slice *slice = NULL;
        switch (f.number) {
        case 1: case 11:
            if (f.wire_type != 1) return -1;
            *(f.number == 1 ? &time : &observed) = f.scalar;
            continue;
        case 2:
            if (f.wire_type != 0) return -1;
            severity = f.scalar;
            continue;
        case 8:
            if (f.wire_type != 5) return -1;
            flags = f.scalar;
            continue;
        case 3: slice = &severity_text; break;
        case 5:
            if (seen_body++) return -1; /* a body split over two fields: the parser merges them */
            slice = &body;
            break;
        case 6: if (f.wire_type != 2) return -1; continue;
        case 9: slice = &trace_id; break;
        case 10: slice = &span_id; break;
        case 12: slice = &event_name; break;
        default: continue;
        }
        if (f.wire_type != 2) return -1;
        slice->data = f.data;
        slice->len = f.len;
    }
    if (rc < 0) return rc;
    int64_t n = put_attributes(enc, &s[L_ATTR_KEYS], &s[L_ATTR_VALUES], msg, len, 6, NULL, NULL, NULL);
    if (n < 0) return (int)n;
    enc->attr_entries += (uint64_t)n;
    put_u64le(&s[L_ATTR_OFFSETS], enc->attr_entries);
    enc->scratch.len = 0;
    if ((rc = put_value_text(&enc->scratch, body.data, body.len)) < 0) return rc;
    put_string(&s[L_BODY], (const uint8_t *)enc->scratch.data, enc->scratch.len);

    put_u64le(&s[L_TIMESTAMP], time != 0 ? time : observed);
    put_hex_id(&s[L_TRACE_ID], trace_id.data, trace_id.len, 16);
    put_hex_id(&s[L_SPAN_ID], span_id.data, span_id.len, 8);
    put_byte(&s[L_FLAGS], (char)(uint8_t)flags);
    put_string(&s[L_SEVERITY_TEXT], severity_text.data, severity_text.len);
    put_byte(&s[L_SEVERITY_NUMBER], (char)(uint8_t)severity); /* the low byte, as toUInt8(bitAnd(x, 255)) */
    put_string(&s[L_SERVICE], (const uint8_t *)res->service_name.data, res->service_name.len);
    put_string(&s[L_RES_SCHEMA_URL], res->res_schema_url.data, res->res_schema_url.len);
    put(&s[L_RES_KEYS], res->res_keys.data, res->res_keys.len);
    put(&s[L_RES_VALUES], res->res_values.data, res->res_values.len);
    enc->res_entries += res->res_entries;
    put_u64le(&s[L_RES_OFFSETS], enc->res_entries);
    put_string(&s[L_SCOPE_SCHEMA_URL], scope->schema_url.data, scope->schema_url.len);
    put_string(&s[L_SCOPE_NAME], scope->name.data, scope->name.len);
    put_string(&s[L_SCOPE_VERSION], scope->version.data, scope->version.len);
    put(&s[L_SCOPE_KEYS], scope->keys.data, scope->keys.len);
    put(&s[L_SCOPE_VALUES], scope->values.data, scope->values.len);
    enc->scope_entries += scope->entries;
    put_u64le(&s[L_SCOPE_OFFSETS], enc->scope_entries);
    put_string(&s[L_EVENT_NAME], event_name.data, event_name.len);
    enc->rows++;
    return 0;
}

static int collect_scope_logs(Encoder *enc, Rows *rows, const uint8_t *msg, size_t len) {
    Slice scope_message;
    Scope *scope = new_scope(rows);
    if (scope == NULL || find_single(msg, len, 1, &scope_message) < 0 ||
        find_bytes(msg, len, 3, &scope->schema_url) < 0 ||
        find_bytes(scope_message.data, scope_message.len, 1, &scope->name) < 0 ||
        find_bytes(scope_message.data, scope_message.len, 2, &scope->version) < 0)
        return -1;
    int64_t n = put_attributes(enc, &scope->keys, &scope->values, scope_message.data, scope_message.len, 3, NULL,
                               NULL, NULL);
    if (n < 0) return (int)n;
    if (scope->keys.failed || scope->values.failed) {
        rows->failed = 1;
        return -1;
    }
    scope->entries = (uint64_t)n;
    Reader r = reader(msg, len);
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 2) continue;
        uint64_t time;
        Row *row;
        prefetch_message(f.data, f.len);
        if (f.wire_type != 2 || log_record_time(f.data, f.len, &time) < 0 || (row = new_row(rows, f.data, f.len)) == NULL)
            return -1;
        row->seconds = time / 1000000000u;
        row->time = time;
    }
    return rc;
}

static int collect_resource_logs(Encoder *enc, Rows *rows, const uint8_t *msg, size_t len) {
    int rc = collect_resource(enc, rows, msg, len, 3);
    if (rc < 0) return rc;
    Reader r = reader(msg, len);
    Field f;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 2) continue;
        if (f.wire_type != 2) return -1;
        if ((rc = collect_scope_logs(enc, rows, f.data, f.len)) < 0) return rc;
    }
    return rc;
}

static void put_header_string(Buf *b, const char *s) { put_string(b, (const uint8_t *)s, strlen(s)); }

/* A bytes object with room for `size` bytes to write the block into; its size is set
 * once the block is written (block_done). The previous block is reused when nothing but
 * this encoder holds it any more (the insert is done with it) and it is large enough: a
 * fresh block of tens of MB is memory new from the kernel (glibc maps anything above
 * 32 MB on its own), and faulting in and zeroing its pages cost ~15% of the encoding.
 * Writing into a bytes object is safe only because no one else can see it: its one
 * reference is ours. A block no longer worth keeping is let go, as buffers are. */
#if PY_VERSION_HEX < 0x030D0000
#define REUSE_BLOCKS 1
#else
#define REUSE_BLOCKS 0 /* where a bytes object keeps its hash is known up to 3.12 only */
#endif

static PyObject *block_for(Encoder *enc, size_t size) {
    PyObject *block = enc->block;
    if (REUSE_BLOCKS && block != NULL && Py_REFCNT(block) == 1 && size <= enc->block_capacity &&
        worth_keeping(enc->block_capacity, size)) {
#if REUSE_BLOCKS
        _Py_COMP_DIAG_PUSH
        _Py_COMP_DIAG_IGNORE_DEPR_DECLS
        ((PyBytesObject *)block)->ob_shash = -1; /* a hash computed on the old contents */
        _Py_COMP_DIAG_POP
#endif
        Py_INCREF(block);
        return block;
    }
    Py_CLEAR(enc->block);
    /* Room for a somewhat larger next batch: batches behind the queue vary in size. */
    size_t capacity = size + size / 8 + 4096;
    block = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)capacity);
    if (block == NULL || !REUSE_BLOCKS) return block; /* never reused: not kept either */
    enc->block = block;
    enc->block_capacity = capacity;
    Py_INCREF(block);
    return block;
}

static void block_done(PyObject *block, size_t size) {
    Py_SET_SIZE(block, (Py_ssize_t)size);
    PyBytes_AS_STRING(block)[size] = '\0';
}

/* The block: column count, row count, then each column's name, type and streams. */
static PyObject *native_block(Encoder *enc, const Column *columns, size_t n_columns) {
    Buf header = {0};
    put_varuint(&header, n_columns);
    put_varuint(&header, enc->rows);
    size_t total = header.len;
    for (size_t c = 0; c < n_columns; c++) {
        total += strlen(columns[c].name) + strlen(columns[c].type) + 20;
        for (const int *st = columns[c].streams; *st >= 0; st++) total += enc->s[*st].len;
    }
    if (header.failed) return PyErr_NoMemory();
    PyObject *block = block_for(enc, total);
    if (block == NULL) {
        free(header.data);
        return NULL;
    }
    char *o = PyBytes_AS_STRING(block);
    memcpy(o, header.data, header.len);
    o += header.len;
    free(header.data);
    for (size_t c = 0; c < n_columns; c++) {
        Buf names = {0};
        put_header_string(&names, columns[c].name);
        put_header_string(&names, columns[c].type);
        if (names.failed) {
            Py_DECREF(block);
            return PyErr_NoMemory();
        }
        memcpy(o, names.data, names.len);
        o += names.len;
        free(names.data);
        for (const int *st = columns[c].streams; *st >= 0; st++) {
            if (enc->s[*st].len) memcpy(o, enc->s[*st].data, enc->s[*st].len);
            o += enc->s[*st].len;
        }
    }
    block_done(block, (size_t)(o - PyBytes_AS_STRING(block)));
    return block;
}

typedef struct {
    const char *message; /* "ExportTraceServiceRequest" */
    ResourcePart part;
    RowWriter write;
    const Column *columns;
    size_t n_columns;
    int attr_values_stream; /* the biggest stream, sized up front */
} Signal;

static PyObject *encode(PyObject *arg, const Signal *signal) {
    /* A tuple: the caller's list could change while the GIL is released. */
    PyObject *seq = PySequence_Tuple(arg);
    if (seq == NULL) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    PyObject **items = &PyTuple_GET_ITEM(seq, 0);
    size_t input = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyBytes_Check(items[i])) {
            Py_DECREF(seq);
            return PyErr_Format(PyExc_TypeError, "item %zd is %.100s, not bytes", i, Py_TYPE(items[i])->tp_name);
        }
        input += (size_t)PyBytes_GET_SIZE(items[i]);
    }
    Encoder *enc = encoder_take();
    if (enc == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    buf_reserve(&enc->s[signal->attr_values_stream], input + input / 4 + 4096);
    size_t failed_at = 0;
    int rc = 0;
    Rows rows;
    memset(&rows, 0, sizeof rows);
    /* The bytes objects are immutable and held by the tuple: safe to read without the GIL. */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n && rc >= 0; i++) {
        rows.request = (size_t)i;
        rc = collect_request(enc, &rows, (const uint8_t *)PyBytes_AS_STRING(items[i]),
                             (size_t)PyBytes_GET_SIZE(items[i]), signal->part);
        if (rc < 0) failed_at = (size_t)i;
    }
    if (rc >= 0 && !rows.failed) rc = write_rows(enc, &rows, signal->write, &failed_at);
    rows_free(&rows);
    Py_END_ALLOW_THREADS
    Py_DECREF(seq);
    PyObject *result = NULL;
    if (encoder_failed(enc) || rows.failed) {
        PyErr_NoMemory();
    } else if (rc == -2) {
        PyErr_Format(PyExc_ValueError, "request %zu: a value nested deeper than %d levels", failed_at,
                     MAX_DEPTH);
    } else if (rc < 0) {
        PyErr_Format(PyExc_ValueError, "request %zu: malformed %s", failed_at, signal->message);
    } else {
        PyObject *block = native_block(enc, signal->columns, signal->n_columns);
        if (block != NULL) result = Py_BuildValue("(NK)", block, (unsigned long long)enc->rows);
    }
    encoder_give_back(enc);
    return result;
}

static const Signal TRACES = {"ExportTraceServiceRequest", collect_resource_spans, put_span, TRACE_COLUMNS,
                              N_TRACE_COLUMNS, S_ATTR_VALUES};
static const Signal LOGS = {"ExportLogsServiceRequest", collect_resource_logs, put_log_record, LOG_COLUMNS,
                            N_LOG_COLUMNS, L_ATTR_VALUES};

PyDoc_STRVAR(traces_doc,
             "traces(requests) -> (block, rows)\n\n"
             "The rows of otel_traces as one block in ClickHouse's Native format, for a\n"
             "sequence of serialized ExportTraceServiceRequest messages, and how many rows\n"
             "it holds. Raises ValueError on malformed input.");

static PyObject *traces(PyObject *self, PyObject *arg) { return encode(arg, &TRACES); }

PyDoc_STRVAR(logs_doc,
             "logs(requests) -> (block, rows)\n\n"
             "The rows of otel_logs (all columns but TimestampTime, its DEFAULT) as one\n"
             "Native block, for a sequence of serialized ExportLogsServiceRequest messages.");

static PyObject *logs(PyObject *self, PyObject *arg) { return encode(arg, &LOGS); }

PyDoc_STRVAR(value_text_doc,
             "value_text(any_value) -> bytes\n\n"
             "The stored text of a serialized AnyValue (pcommon.Value.AsString).");

static PyObject *value_text(PyObject *self, PyObject *arg) {
    (void)self;
    if (!PyBytes_Check(arg)) return PyErr_Format(PyExc_TypeError, "value_text() takes bytes");
    Buf out = {0};
    int rc = put_value_text(&out, (const uint8_t *)PyBytes_AS_STRING(arg), (size_t)PyBytes_GET_SIZE(arg));
    if (out.failed) {
        free(out.data);
        return PyErr_NoMemory();
    }
    if (rc < 0) {
        free(out.data);
        return PyErr_Format(PyExc_ValueError, rc == -2 ? "value nested too deep" : "malformed AnyValue");
    }
    PyObject *text = PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.len);
    free(out.data);
    return text;
}

static PyMethodDef methods[] = {
    {"traces", traces, METH_O, traces_doc},
    {"logs", logs, METH_O, logs_doc},
    {"value_text", value_text, METH_O, value_text_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rows", "OTLP requests to ClickHouse rows in the Native format.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rows(void) { return PyModule_Create(&module); }
