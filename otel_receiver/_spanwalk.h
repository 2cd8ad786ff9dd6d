/*
 * The span walk shared by the C extensions that read serialized
 * ExportTraceServiceRequests (otel_receiver/_spanscan.c,
 * exporters/prometheus/_spanmetrics.c): AnyValue conversion to Python objects, the
 * resource's service.name, a span's fields and wanted attributes, and a walk over every
 * span with callbacks. Needs Python.h and _wire.h first.
 */
#ifndef OTEL_RECEIVER_SPANWALK_H
#define OTEL_RECEIVER_SPANWALK_H

/* How the walk reports malformed input: a ValueError by default. An includer that walks
 * without the GIL defines it to record the message instead (the functions that build
 * Python objects always raise). */
#ifndef WALK_ERROR
#define WALK_ERROR(message) PyErr_SetString(PyExc_ValueError, message)
#endif

/* AnyValue nesting beyond this is refused (protobuf's own parser stops at 100). */
#define MAX_DEPTH 100
/* Keys one call can ask for. */
#define MAX_KEYS 128

typedef struct {
    const char *data;
    Py_ssize_t len;
} Key;

/* A growable byte buffer (PyMem-allocated; the owner frees `data`). */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} Buffer;

/* Room for `more` bytes after `len`: 0, or -1 with MemoryError set. */
static inline int buffer_reserve(Buffer *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) cap *= 2;
    uint8_t *grown = PyMem_Realloc(b->data, cap);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = grown;
    b->cap = cap;
    return 0;
}

static inline PyObject *convert(const uint8_t *data, size_t len, int depth);

static inline PyObject *convert_array(const Value *v, int depth) {
    PyObject *list = PyList_New(0);
    if (list == NULL) return NULL;
    Reader r = reader(v->data, v->len);
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 1) continue;
        if (f.wire_type != 2) break;
        PyObject *item = convert(f.data, f.len, depth + 1);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    if (rc != 0) {
        Py_DECREF(list);
        return PyErr_Format(PyExc_ValueError, "malformed ArrayValue");
    }
    return list;
}

static inline PyObject *convert_kvlist(const Value *v, int depth) {
    PyObject *dict = PyDict_New();
    if (dict == NULL) return NULL;
    Reader r = reader(v->data, v->len);
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 1) continue;
        Pair kv;
        if (f.wire_type != 2 || parse_pair(f.data, f.len, &kv) < 0 || kv.values > 1) {
            rc = -1;
            break;
        }
        PyObject *key = PyUnicode_DecodeUTF8((const char *)kv.key, (Py_ssize_t)kv.key_len, "replace");
        PyObject *item = key != NULL ? convert(kv.value, kv.value_len, depth + 1) : NULL;
        if (item == NULL || PyDict_SetItem(dict, key, item) < 0) {
            Py_XDECREF(key);
            Py_XDECREF(item);
            Py_DECREF(dict);
            return NULL;
        }
        Py_DECREF(key);
        Py_DECREF(item);
    }
    if (rc != 0) {
        Py_DECREF(dict);
        return PyErr_Format(PyExc_ValueError, "malformed KeyValueList");
    }
    return dict;
}

/* An AnyValue as a Python object (see the header comment). */
static inline PyObject *convert(const uint8_t *data, size_t len, int depth) {
    if (depth > MAX_DEPTH) return PyErr_Format(PyExc_ValueError, "a value nested deeper than %d levels", MAX_DEPTH);
    Value v;
    /* A client's array or kvlist split in two (the parser merges them) is refused too:
     * the callers then read the objects. */
    if (parse_value(data, len, &v) < 0 || v.merged) return PyErr_Format(PyExc_ValueError, "malformed AnyValue");
    switch (v.kind) {
    case V_STRING: return PyUnicode_DecodeUTF8((const char *)v.data, (Py_ssize_t)v.len, "replace");
    case V_BOOL: return PyBool_FromLong(v.scalar != 0);
    case V_INT: return PyLong_FromLongLong((long long)(int64_t)v.scalar);
    case V_DOUBLE: {
        double d;
        memcpy(&d, &v.scalar, sizeof d);
        return PyFloat_FromDouble(d);
    }
    case V_BYTES: return PyBytes_FromStringAndSize((const char *)v.data, (Py_ssize_t)v.len);
    case V_ARRAY: return convert_array(&v, depth);
    case V_KVLIST: return convert_kvlist(&v, depth);
    default: return PyTuple_New(0);
    }
}

/* Every attribute of a ResourceSpans' resource, in order, passed to `visit` (which
 * returns 0 to go on, 1 to stop, -1 on error). Protobuf merges repeated occurrences of
 * the singular `resource` field, so their attribute lists are read one after another,
 * as the objects hold them. 0 or 1, or -1 when malformed. */
typedef int (*AttributeVisitor)(const Pair *kv, void *state);

static inline int each_resource_attribute(const uint8_t *resource_spans, size_t len, AttributeVisitor visit,
                                          void *state) {
    Reader r = reader(resource_spans, len);
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 1) continue;
        if (f.wire_type != 2) return -1;
        Reader ar = reader(f.data, f.len);
        Field af;
        int arc;
        while ((arc = next_field(&ar, &af)) > 0) {
            if (af.number != 1) continue;
            Pair kv;
            if (af.wire_type != 2 || parse_pair(af.data, af.len, &kv) < 0 || kv.values > 1) return -1;
            int v = visit(&kv, state);
            if (v != 0) return v;
        }
        if (arc < 0) return -1;
    }
    return rc;
}

typedef struct {
    const uint8_t *data; /* the first service.name's AnyValue, NULL when none */
    size_t len;
} FirstService;

static inline int first_service(const Pair *kv, void *state) {
    static const char name[] = "service.name";
    if (kv->key_len != sizeof name - 1 || memcmp(kv->key, name, kv->key_len) != 0) return 0;
    FirstService *first = state;
    first->data = kv->value;
    first->len = kv->value_len;
    return 1;
}

/* The resource's first service.name when it is a string, "" when absent or not a
 * string: 0, or -1 with ValueError set. */
static inline int service_text(const uint8_t *resource_spans, size_t len, Slice *out) {
    FirstService first = {NULL, 0};
    out->data = (const uint8_t *)"";
    out->len = 0;
    if (each_resource_attribute(resource_spans, len, first_service, &first) < 0) {
        WALK_ERROR("malformed Resource");
        return -1;
    }
    if (first.data == NULL) return 0;
    Value v;
    if (parse_value(first.data, first.len, &v) < 0) {
        WALK_ERROR("malformed AnyValue");
        return -1;
    }
    if (v.kind == V_STRING) {
        out->data = v.data;
        out->len = v.len;
    }
    return 0;
}

/* service_text as a str. */
static inline PyObject *service_name(const uint8_t *resource_spans, size_t len) {
    Slice text;
    if (service_text(resource_spans, len, &text) < 0) return NULL;
    return PyUnicode_DecodeUTF8((const char *)text.data, (Py_ssize_t)text.len, "replace");
}

/* What a scan reads from one span; `found*` per wanted key (its last occurrence). */
typedef struct {
    const uint8_t *trace_id, *span_id, *name;
    size_t trace_id_len, span_id_len, name_len;
    uint64_t kind, start, end, code;
    int any;
    int found[MAX_KEYS];
    const uint8_t *found_data[MAX_KEYS];
    size_t found_len[MAX_KEYS];
} SpanFields;

/* Wanted keys by name length (mod 64): a span's attribute is compared only with the keys
 * of its length, one or two of a dozen (a scan of all of them was a fifth of a span's
 * cost in the span metrics). */
#define KEY_BUCKETS 64
typedef struct {
    const Key *keys;
    Py_ssize_t n_keys;
    int16_t first[KEY_BUCKETS]; /* -1: no key of that length */
    int16_t next[MAX_KEYS];     /* the next key in the same bucket, ascending; -1 at the end */
} KeyIndex;

static inline void index_keys(KeyIndex *ix, const Key *keys, Py_ssize_t n_keys) {
    ix->keys = keys;
    ix->n_keys = n_keys;
    for (int b = 0; b < KEY_BUCKETS; b++) ix->first[b] = -1;
    for (Py_ssize_t k = n_keys - 1; k >= 0; k--) {
        int b = (int)(keys[k].len & (KEY_BUCKETS - 1));
        ix->next[k] = ix->first[b];
        ix->first[b] = (int16_t)k;
    }
}

/* Equal bytes, compared a word at a time: the names are 10-40 bytes, too short for
 * memcmp's call and setup to pay. */
WIRE_INLINE int same_bytes(const uint8_t *a, const uint8_t *b, size_t n) {
    if (n < 8) return memcmp(a, b, n) == 0;
    uint64_t x, y;
    for (size_t i = 0; i + 8 < n; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y) return 0;
    }
    memcpy(&x, a + n - 8, 8);
    memcpy(&y, b + n - 8, 8);
    return x == y;
}

/* The first wanted key equal to this name, or -1. */
WIRE_INLINE int find_key(const KeyIndex *ix, const uint8_t *key, size_t key_len) {
    for (int k = ix->first[key_len & (KEY_BUCKETS - 1)]; k >= 0; k = ix->next[k])
        if ((size_t)ix->keys[k].len == key_len && same_bytes((const uint8_t *)ix->keys[k].data, key, key_len))
            return k;
    return -1;
}

/* A span attribute's KeyValue: recorded when wanted. 0, or -1 with ValueError set. */
WIRE_INLINE int read_attribute(const uint8_t *data, size_t len, const KeyIndex *ix, SpanFields *s) {
    Pair kv;
    /* Two values in one KeyValue (a client's encoding the parser merges): refused, the
     * callers then read the objects. */
    if (!simple_pair(data, len, &kv) && (parse_pair(data, len, &kv) < 0 || kv.values > 1)) {
        WALK_ERROR("malformed Span attribute");
        return -1;
    }
    int k = find_key(ix, kv.key, kv.key_len);
    if (k >= 0) {
        s->found[k] = 1;
        s->found_data[k] = kv.value;
        s->found_len[k] = kv.value_len;
        s->any = 1;
    }
    return 0;
}

/* 0, or -1 with ValueError set. */
static inline int read_span(const uint8_t *msg, size_t len, const KeyIndex *ix, SpanFields *s) {
    memset(s, 0, offsetof(SpanFields, found));
    memset(s->found, 0, (size_t)ix->n_keys * sizeof s->found[0]);
    s->trace_id = s->span_id = s->name = (const uint8_t *)"";
    Reader r = reader(msg, len);
    Field f;
    int rc;
    for (;;) {
        /* Attributes (field 9, length-delimited: tag 0x4A) are most of a span's fields:
         * tested first, outside the switch, whose indirect jump mispredicts. */
        if (r.p < r.end && *r.p == 0x4A) {
            r.p++;
            uint64_t n;
            if (read_varint(&r, &n) < 0 || n > (uint64_t)(r.end - r.p)) goto malformed;
            const uint8_t *data = r.p;
            r.p += n;
            if (read_attribute(data, (size_t)n, ix, s) < 0) return -1;
            continue;
        }
        if ((rc = next_field(&r, &f)) <= 0) break;
        switch (f.number) {
        case 1: case 2: case 5:
            if (f.wire_type != 2) goto malformed;
            if (f.number == 1) {
                s->trace_id = f.data;
                s->trace_id_len = f.len;
            } else if (f.number == 2) {
                s->span_id = f.data;
                s->span_id_len = f.len;
            } else {
                s->name = f.data;
                s->name_len = f.len;
            }
            break;
        case 6:
            if (f.wire_type != 0) goto malformed;
            s->kind = f.scalar;
            break;
        case 7: case 8:
            if (f.wire_type != 1) goto malformed;
            *(f.number == 7 ? &s->start : &s->end) = f.scalar;
            break;
        case 9: /* a tag written in more bytes than needed */
            if (f.wire_type != 2) {
                WALK_ERROR("malformed Span attribute");
                return -1;
            }
            if (read_attribute(f.data, f.len, ix, s) < 0) return -1;
            break;
        case 15: {
            if (f.wire_type != 2) goto malformed;
            /* Protobuf merges repeated status messages: a later code replaces an earlier one. */
            Reader sr = reader(f.data, f.len);
            Field sf;
            int src;
            while ((src = next_field(&sr, &sf)) > 0)
                if (sf.number == 3 && sf.wire_type == 0) s->code = sf.scalar;
            if (src < 0) {
                WALK_ERROR("malformed Status");
                return -1;
            }
            break;
        }
        default: break;
        }
    }
    if (rc == 0) return 0;
malformed:
    WALK_ERROR("malformed Span");
    return -1;
}

/* The tuple of converted values, None for each key not found. */
static inline PyObject *wanted_values(const int *found, const uint8_t *const *data, const size_t *len,
                                      Py_ssize_t n_keys) {
    PyObject *values = PyTuple_New(n_keys);
    if (values == NULL) return NULL;
    for (Py_ssize_t k = 0; k < n_keys; k++) {
        PyObject *item;
        if (found[k]) {
            item = convert(data[k], len[k], 0);
            if (item == NULL) {
                Py_DECREF(values);
                return NULL;
            }
        } else {
            item = Py_NewRef(Py_None);
        }
        PyTuple_SET_ITEM(values, k, item);
    }
    return values;
}

/* enums are int32 on the wire */
static inline int enum_value(uint64_t v) { return (int)(int32_t)(uint32_t)v; }

/* Keys from a tuple of str; 0, or -1 with an exception set. The UTF-8 buffers belong
 * to the str objects, which the caller's argument tuple keeps alive. */
static inline int parse_keys(PyObject *tuple, Key *keys, Py_ssize_t *n_keys) {
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    if (n > MAX_KEYS) {
        PyErr_Format(PyExc_ValueError, "at most %d keys", MAX_KEYS);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *key = PyTuple_GET_ITEM(tuple, k);
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "key %zd is %.100s, not str", k, Py_TYPE(key)->tp_name);
            return -1;
        }
        keys[k].data = PyUnicode_AsUTF8AndSize(key, &keys[k].len);
        if (keys[k].data == NULL) return -1;
    }
    *n_keys = n;
    return 0;
}

/* -------------------------------------------------------------------- the walk */

/* Every span of a serialized ExportTraceServiceRequest, for the entry points below:
 * `resource` once per ResourceSpans before its spans (what it builds lives until
 * `end_resource`), `span` for each span with its position. The callbacks return 0, or
 * -1 with an exception set (or WALK_ERROR called); rows go to `out`. */
typedef struct SpanWalk SpanWalk;
struct SpanWalk {
    int (*resource)(SpanWalk *w, const uint8_t *resource_spans, size_t len);
    int (*span)(SpanWalk *w, const uint8_t *span, size_t len, int ri, int si, int i);
    void (*end_resource)(SpanWalk *w);
    PyObject *out;
};

static inline int walk_resource_spans(SpanWalk *w, const uint8_t *msg, size_t len, int ri) {
    if (w->resource(w, msg, len) < 0) return -1;
    Reader r = reader(msg, len);
    Field f;
    int rc, si = -1, failed = 0;
    while (!failed && (rc = next_field(&r, &f)) > 0) {
        if (f.number != 2) continue;
        si++;
        if (f.wire_type != 2) {
            rc = -1;
            break;
        }
        Reader sr = reader(f.data, f.len);
        Field sf;
        int i = -1;
        while ((rc = next_field(&sr, &sf)) > 0) {
            if (sf.number != 2) continue;
            i++;
            if (sf.wire_type != 2) {
                rc = -1;
                break;
            }
            /* A span is read field by field, skipping long values (prompts): each field
             * after a skip is a cache miss the hardware prefetcher does not foresee when
             * the request's bytes are no longer in cache (an exporter reading a request
             * queued behind others). Asking for all its lines up front overlaps the misses;
             * at most 16 kB of them, so that a huge span's later lines do not evict the
             * earlier ones from L1 before they are read. */
            size_t ahead = sf.len < 16384 ? sf.len : 16384;
            for (size_t off = 0; off < ahead; off += 64) __builtin_prefetch(sf.data + off);
            if (w->span(w, sf.data, sf.len, ri, si, i) < 0) {
                failed = 1;
                break;
            }
        }
        if (rc < 0) break;
    }
    w->end_resource(w);
    if (failed) return -1;
    if (rc < 0) {
        WALK_ERROR("malformed ResourceSpans");
        return -1;
    }
    return 0;
}

/* Every span of a serialized request: 0, or -1 with WALK_ERROR called (or the callbacks'
 * error). Builds no Python object itself. */
static inline int walk_request(const uint8_t *buf, size_t len, SpanWalk *w) {
    Reader r = reader(buf, len);
    Field f;
    int rc, ri = -1;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number != 1) continue;
        ri++;
        if (f.wire_type != 2) {
            rc = -1;
            break;
        }
        if (walk_resource_spans(w, f.data, f.len, ri) < 0) return -1;
    }
    if (rc < 0) {
        WALK_ERROR("malformed ExportTraceServiceRequest");
        return -1;
    }
    return 0;
}

/* The list of rows, or NULL with an exception set. */
static inline PyObject *walk(const Py_buffer *request, SpanWalk *w) {
    w->out = PyList_New(0);
    if (w->out == NULL) return NULL;
    if (walk_request((const uint8_t *)request->buf, (size_t)request->len, w) < 0) Py_CLEAR(w->out);
    return w->out;
}

/* Appends a new reference (NULL: a failed build); 0, or -1 with an exception set. */
static inline int append_row(PyObject *out, PyObject *row) {
    if (row == NULL) return -1;
    int rc = PyList_Append(out, row);
    Py_DECREF(row);
    return rc;
}

static inline int no_resource(SpanWalk *w, const uint8_t *resource_spans, size_t len) { return 0; }

static inline void no_end_resource(SpanWalk *w) {}

#endif
