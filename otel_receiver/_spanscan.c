/*
 * The attributes a processor or exporter wants from each span, read from a
 * serialized ExportTraceServiceRequest in one pass.
 *
 * Why in C: reading a span's attributes through protobuf's Python objects creates a
 * Python wrapper per KeyValue and per AnyValue it touches (~0.5 us per attribute,
 * several us per span), more than the whole C parse of the request. Serializing the
 * request (upb, C speed) and reading the wanted keys here costs a fraction of that,
 * and only the spans that hold a wanted key reach Python.
 *
 * spans(request, keys) -> list of (service, kind, status_code, start, end, trace_id,
 * span_id, values): one tuple per span with at least one of `keys`, in request order.
 * `service` is the resource's first service.name when it is a string ("" otherwise,
 * as attributes.get_str reads it). `values` holds, per key, the value of its last
 * occurrence (as attributes.pick reads them), converted: str, bool, int, float, bytes,
 * list (array), dict (kvlist), () for an AnyValue with nothing set, None when absent.
 * Malformed input raises ValueError.
 *
 * locate(request, matches) says which resources, scopes and items of a serialized
 * request (any signal) hold some byte ranges, and in which fields (see locate_doc).
 *
 * splice(request, edits) patches a serialized request (any signal: they share the
 * resource / scope / item layout) with the messages a processor changed, so the bytes
 * stay the batch's serialization without serializing it again (see splice_doc).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "_wire.h"
#include "_spanwalk.h"

/* ------------------------------------------------------------------------ spans */

typedef struct {
    SpanWalk walk;
    const KeyIndex *index;
    PyObject *service; /* of the current resource */
} RowsWalk;

static int rows_resource(SpanWalk *w, const uint8_t *resource_spans, size_t len) {
    RowsWalk *rows = (RowsWalk *)w;
    rows->service = service_name(resource_spans, len);
    return rows->service == NULL ? -1 : 0;
}

static void rows_end_resource(SpanWalk *w) { Py_CLEAR(((RowsWalk *)w)->service); }

static int rows_span(SpanWalk *w, const uint8_t *msg, size_t len, int ri, int si, int i) {
    RowsWalk *rows = (RowsWalk *)w;
    SpanFields s;
    if (read_span(msg, len, rows->index, &s) < 0) return -1;
    if (!s.any) return 0;
    PyObject *values = wanted_values(s.found, s.found_data, s.found_len, rows->index->n_keys);
    if (values == NULL) return -1;
    return append_row(w->out, Py_BuildValue("(OiiKKy#y#N)", rows->service, enum_value(s.kind), enum_value(s.code),
                                            (unsigned long long)s.start, (unsigned long long)s.end,
                                            (const char *)s.trace_id, (Py_ssize_t)s.trace_id_len,
                                            (const char *)s.span_id, (Py_ssize_t)s.span_id_len, values));
}

PyDoc_STRVAR(spans_doc,
             "spans(request, keys) -> list\n\n"
             "For each span of a serialized ExportTraceServiceRequest that holds one of the\n"
             "attribute keys: (service, kind, status_code, start, end, trace_id, span_id,\n"
             "values), values being per key the last occurrence's value or None.");

static PyObject *spans(PyObject *self, PyObject *args) {
    Py_buffer request;
    PyObject *key_tuple, *out = NULL;
    if (!PyArg_ParseTuple(args, "y*O!:spans", &request, &PyTuple_Type, &key_tuple)) return NULL;
    Key keys[MAX_KEYS];
    Py_ssize_t n_keys;
    KeyIndex index;
    RowsWalk rows = {{rows_resource, rows_span, rows_end_resource, NULL}, &index, NULL};
    if (parse_keys(key_tuple, keys, &n_keys) == 0) {
        index_keys(&index, keys, n_keys);
        out = walk(&request, &rows.walk);
    }
    PyBuffer_Release(&request);
    return out;
}

/* ------------------------------------------------------------------------ table */

typedef struct {
    const KeyIndex *index;
    int found[MAX_KEYS];
    const uint8_t *data[MAX_KEYS];
    size_t lens[MAX_KEYS];
} Wanted;

static int keep_wanted(const Pair *kv, void *state) {
    Wanted *w = state;
    int k = find_key(w->index, kv->key, kv->key_len);
    if (k >= 0) {
        w->found[k] = 1;
        w->data[k] = kv->value;
        w->lens[k] = kv->value_len;
    }
    return 0;
}

/* The values of `keys` among a ResourceSpans' resource attributes (last occurrence each). */
static PyObject *resource_values(const uint8_t *resource_spans, size_t len, const KeyIndex *index) {
    Wanted w = {.index = index};
    if (each_resource_attribute(resource_spans, len, keep_wanted, &w) < 0)
        return PyErr_Format(PyExc_ValueError, "malformed Resource");
    return wanted_values(w.found, w.data, w.lens, index->n_keys);
}

typedef struct {
    SpanWalk walk;
    const KeyIndex *index, *resource_index;
    PyObject *rvalues; /* of the current resource, shared by its rows */
} TableWalk;

static int table_resource(SpanWalk *w, const uint8_t *resource_spans, size_t len) {
    TableWalk *t = (TableWalk *)w;
    t->rvalues = resource_values(resource_spans, len, t->resource_index);
    return t->rvalues == NULL ? -1 : 0;
}

static void table_end_resource(SpanWalk *w) { Py_CLEAR(((TableWalk *)w)->rvalues); }

static int table_span(SpanWalk *w, const uint8_t *msg, size_t len, int ri, int si, int i) {
    TableWalk *t = (TableWalk *)w;
    SpanFields s;
    if (read_span(msg, len, t->index, &s) < 0) return -1;
    PyObject *values = wanted_values(s.found, s.found_data, s.found_len, t->index->n_keys);
    if (values == NULL) return -1;
    PyObject *name = PyUnicode_DecodeUTF8((const char *)s.name, (Py_ssize_t)s.name_len, "replace");
    if (name == NULL) {
        Py_DECREF(values);
        return -1;
    }
    return append_row(w->out, Py_BuildValue("(iiiONiiKKN)", ri, si, i, t->rvalues, name, enum_value(s.kind),
                                            enum_value(s.code), (unsigned long long)s.start,
                                            (unsigned long long)s.end, values));
}

PyDoc_STRVAR(table_doc,
             "table(request, keys, resource_keys) -> list\n\n"
             "For every span of a serialized ExportTraceServiceRequest: (resource index, scope\n"
             "index, span index, resource values, name, kind, status_code, start, end, values);\n"
             "the value tuples hold per key the last occurrence's value or None.");

static PyObject *table(PyObject *self, PyObject *args) {
    Py_buffer request;
    PyObject *key_tuple, *rkey_tuple, *out = NULL;
    if (!PyArg_ParseTuple(args, "y*O!O!:table", &request, &PyTuple_Type, &key_tuple, &PyTuple_Type, &rkey_tuple))
        return NULL;
    Key keys[MAX_KEYS], rkeys[MAX_KEYS];
    Py_ssize_t n_keys, n_rkeys;
    KeyIndex index, resource_index;
    TableWalk t = {{table_resource, table_span, table_end_resource, NULL}, &index, &resource_index, NULL};
    if (parse_keys(key_tuple, keys, &n_keys) == 0 && parse_keys(rkey_tuple, rkeys, &n_rkeys) == 0) {
        index_keys(&index, keys, n_keys);
        index_keys(&resource_index, rkeys, n_rkeys);
        out = walk(&request, &t.walk);
    }
    PyBuffer_Release(&request);
    return out;
}

/* -------------------------------------------------------------------- positions */

/* 1 when an attribute list entry (a KeyValue's bytes) has one of the keys or starts
 * with one of the prefixes, 0 when not, -1 when malformed. */
static int key_matches(const uint8_t *data, size_t len, const KeyIndex *index, const Key *prefixes,
                       Py_ssize_t n_prefixes) {
    Pair kv;
    if (parse_pair(data, len, &kv) < 0) return -1;
    if (find_key(index, kv.key, kv.key_len) >= 0) return 1;
    for (Py_ssize_t k = 0; k < n_prefixes; k++)
        if ((size_t)prefixes[k].len <= kv.key_len && memcmp(prefixes[k].data, kv.key, (size_t)prefixes[k].len) == 0)
            return 1;
    return 0;
}

/* 1 when the span's attributes or its events' attributes hold a matching key. */
static int span_has_key(const uint8_t *msg, size_t len, const KeyIndex *index, const Key *prefixes,
                        Py_ssize_t n_prefixes) {
    Reader r = reader(msg, len);
    Field f;
    int rc;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.number == 9) {
            if (f.wire_type != 2) return -1;
            int m = key_matches(f.data, f.len, index, prefixes, n_prefixes);
            if (m != 0) return m;
        } else if (f.number == 11) { /* Span.Event: attributes are field 3 */
            if (f.wire_type != 2) return -1;
            Reader er = reader(f.data, f.len);
            Field ef;
            int erc;
            while ((erc = next_field(&er, &ef)) > 0) {
                if (ef.number != 3) continue;
                if (ef.wire_type != 2) return -1;
                int m = key_matches(ef.data, ef.len, index, prefixes, n_prefixes);
                if (m != 0) return m;
            }
            if (erc < 0) return -1;
        }
    }
    return rc;
}

typedef struct {
    SpanWalk walk;
    const KeyIndex *index;
    const Key *prefixes;
    Py_ssize_t n_prefixes;
} PositionsWalk;

static int positions_span(SpanWalk *w, const uint8_t *msg, size_t len, int ri, int si, int i) {
    PositionsWalk *p = (PositionsWalk *)w;
    int m = span_has_key(msg, len, p->index, p->prefixes, p->n_prefixes);
    if (m < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed Span");
        return -1;
    }
    return m == 0 ? 0 : append_row(w->out, Py_BuildValue("(iii)", ri, si, i));
}

PyDoc_STRVAR(positions_doc,
             "positions(request, keys, prefixes) -> list\n\n"
             "(resource index, scope index, span index) of every span of a serialized\n"
             "ExportTraceServiceRequest whose attributes or events' attributes hold one of the\n"
             "keys or a key starting with one of the prefixes, in request order.");

static PyObject *positions(PyObject *self, PyObject *args) {
    Py_buffer request;
    PyObject *key_tuple, *prefix_tuple, *out = NULL;
    if (!PyArg_ParseTuple(args, "y*O!O!:positions", &request, &PyTuple_Type, &key_tuple, &PyTuple_Type,
                          &prefix_tuple))
        return NULL;
    Key keys[MAX_KEYS], prefixes[MAX_KEYS];
    Py_ssize_t n_keys;
    KeyIndex index;
    PositionsWalk p = {{no_resource, positions_span, no_end_resource, NULL}, &index, prefixes, 0};
    if (parse_keys(key_tuple, keys, &n_keys) == 0 && parse_keys(prefix_tuple, prefixes, &p.n_prefixes) == 0) {
        index_keys(&index, keys, n_keys);
        out = walk(&request, &p.walk);
    }
    PyBuffer_Release(&request);
    return out;
}


/* ------------------------------------------------------------------------ locate */

/* The union of the byte ranges a prefilter matched, sorted: `starts[i] < ends[i] <
 * starts[i + 1]` (touching ranges are merged). */
typedef struct {
    size_t *starts, *ends;
    Py_ssize_t n;
} Ranges;

/* The first range ending after `pos` (bisect_right on the ends). */
static Py_ssize_t first_ending_after(const Ranges *h, size_t pos) {
    Py_ssize_t lo = 0, hi = h->n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (h->ends[mid] <= pos) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int overlaps(const Ranges *h, size_t start, size_t end) {
    Py_ssize_t i = first_ending_after(h, start);
    return i < h->n && h->starts[i] < end;
}

typedef struct {
    size_t start, end;
} Range;

static int by_start(const void *a, const void *b) {
    const Range *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

/* 0, or -1 with an exception set; `h` owns one allocation (h->starts) to PyMem_Free. */
static int read_ranges(PyObject *list, Ranges *h) {
    Py_ssize_t n = PyList_GET_SIZE(list);
    Range *ranges = PyMem_Malloc(sizeof(Range) * (size_t)(n ? n : 1));
    size_t *both = PyMem_Malloc(2 * sizeof(size_t) * (size_t)(n ? n : 1));
    if (ranges == NULL || both == NULL) {
        PyMem_Free(ranges);
        PyMem_Free(both);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        Py_ssize_t start, end;
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "nn", &start, &end)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a match is a (start, end) tuple");
            PyMem_Free(ranges);
            PyMem_Free(both);
            return -1;
        }
        if (start < 0 || end < start) {
            PyErr_SetString(PyExc_ValueError, "a match needs 0 <= start <= end");
            PyMem_Free(ranges);
            PyMem_Free(both);
            return -1;
        }
        ranges[i].start = (size_t)start;
        ranges[i].end = (size_t)end;
    }
    qsort(ranges, (size_t)n, sizeof(Range), by_start);
    h->starts = both;
    h->ends = both + n;
    h->n = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (h->n && ranges[i].start <= h->ends[h->n - 1]) {
            if (ranges[i].end > h->ends[h->n - 1]) h->ends[h->n - 1] = ranges[i].end;
        } else {
            h->starts[h->n] = ranges[i].start;
            h->ends[h->n] = ranges[i].end;
            h->n++;
        }
    }
    PyMem_Free(ranges);
    return 0;
}

/* Occurrences counted per field number; numbers this high are unknown fields. */
#define COUNTED_NUMBERS 64

/* The set of (field number, occurrence index) of the length-delimited fields of the
 * message at [s, e) that overlap a range; NULL with an exception set. */
/* {(field number, occurrence index)}: adds one pair. */
static int add_pair(PyObject *set, unsigned long number, long idx) {
    PyObject *pair = Py_BuildValue("(kl)", number, idx);
    int rc = pair == NULL ? -1 : PySet_Add(set, pair);
    Py_XDECREF(pair);
    return rc;
}

/* {field number: [occurrence indexes]}: appends one index. */
static int add_by_number(PyObject *dict, unsigned long number, long idx) {
    PyObject *key = PyLong_FromUnsignedLong(number);
    if (key == NULL) return -1;
    PyObject *indexes = PyDict_GetItemWithError(dict, key);
    int rc = -1;
    if (indexes == NULL && !PyErr_Occurred()) {
        indexes = PyList_New(0);
        if (indexes != NULL) {
            rc = PyDict_SetItem(dict, key, indexes);
            Py_DECREF(indexes); /* the dict holds it */
        }
        if (rc < 0) indexes = NULL;
    }
    PyObject *value = indexes == NULL ? NULL : PyLong_FromLong(idx);
    rc = value == NULL ? -1 : PyList_Append(indexes, value);
    Py_XDECREF(value);
    Py_DECREF(key);
    return rc;
}

static PyObject *fields_with_hits(const uint8_t *base, size_t s, size_t e, const Ranges *h, int by_number) {
    PyObject *hit = by_number ? PyDict_New() : PySet_New(NULL);
    PyObject *rare = NULL; /* occurrences of numbers >= COUNTED_NUMBERS */
    if (hit == NULL) return NULL;
    uint32_t seen[COUNTED_NUMBERS] = {0};
    Py_ssize_t i = first_ending_after(h, s);
    /* Fields are read only up to the end of the last range overlapping the message. */
    Py_ssize_t lo = 0, hi = h->n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (h->starts[mid] < e) lo = mid + 1;
        else hi = mid;
    }
    size_t stop = lo > 0 && h->ends[lo - 1] < e ? h->ends[lo - 1] : e;
    const uint8_t *limit = base + stop;
    Reader r = reader(base + s, e - s);
    Field f;
    int rc = 0;
    while (r.p < limit) {
        if ((rc = next_field(&r, &f)) <= 0) break;
        if (f.wire_type != 2) continue;
        long idx;
        if (f.number < COUNTED_NUMBERS) {
            idx = seen[f.number]++;
        } else {
            if (rare == NULL && (rare = PyDict_New()) == NULL) goto fail;
            PyObject *number = PyLong_FromUnsignedLong(f.number);
            if (number == NULL) goto fail;
            PyObject *count = PyDict_GetItemWithError(rare, number);
            idx = count != NULL ? PyLong_AsLong(count) : 0;
            PyObject *next = PyErr_Occurred() ? NULL : PyLong_FromLong(idx + 1);
            int failed = next == NULL || PyDict_SetItem(rare, number, next) < 0;
            Py_DECREF(number);
            Py_XDECREF(next);
            if (failed) goto fail;
        }
        size_t fs = (size_t)(f.data - base), fe = fs + f.len;
        while (i < h->n && h->ends[i] <= fs) i++;
        if (i < h->n && h->starts[i] < fe) {
            if (by_number ? add_by_number(hit, f.number, idx) < 0 : add_pair(hit, f.number, idx) < 0) goto fail;
        }
    }
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed message");
        goto fail;
    }
    if (by_number) { /* highest first: deleting one keeps the lower indexes valid */
        PyObject *indexes;
        Py_ssize_t pos = 0;
        while (PyDict_Next(hit, &pos, NULL, &indexes))
            if (PyList_Reverse(indexes) < 0) goto fail;
    }
    Py_XDECREF(rare);
    return hit;
fail:
    Py_XDECREF(rare);
    Py_DECREF(hit);
    return NULL;
}

/* Adds (ri, si, k) -> the fields of the message at `f` holding a range: to the dict `out`
 * (locate), or as a pair to the list `out` (locate_fields); 0, or -1. */
static int add_located(PyObject *out, const uint8_t *base, const Field *f, const Ranges *h, long ri, long si,
                       long k) {
    size_t s = (size_t)(f->data - base);
    int by_number = PyList_Check(out);
    PyObject *fields = fields_with_hits(base, s, s + f->len, h, by_number);
    if (fields == NULL) return -1;
    PyObject *place = Py_BuildValue("(lll)", ri, si, k), *pair = NULL;
    int rc = -1;
    if (place != NULL && !by_number) {
        rc = PyDict_SetItem(out, place, fields);
    } else if (place != NULL && (pair = PyTuple_Pack(2, place, fields)) != NULL) {
        rc = PyList_Append(out, pair);
    }
    Py_XDECREF(pair);
    Py_XDECREF(place);
    Py_DECREF(fields);
    return rc;
}

/* The scopes and items of one resource_x (ResourceSpans, ResourceLogs, ResourceMetrics)
 * overlapping a range: 0, 1 when a resource or scope is split over several fields, -1
 * with an exception set. */
static int locate_resource(PyObject *out, const uint8_t *base, const Field *outer, const Ranges *h, long ri) {
    Reader r = reader(outer->data, outer->len);
    Field f;
    int rc;
    long si = -1, resources = 0;
    while ((rc = next_field(&r, &f)) > 0) {
        if (f.wire_type != 2) continue;
        if (f.number == 1) {
            resources++;
            if (overlaps(h, (size_t)(f.data - base), (size_t)(f.data - base) + f.len) &&
                add_located(out, base, &f, h, ri, -1, -1) < 0)
                return -1;
        } else if (f.number == 2) {
            si++;
            if (!overlaps(h, (size_t)(f.data - base), (size_t)(f.data - base) + f.len)) continue;
            Reader sr = reader(f.data, f.len);
            Field sf;
            int src;
            long k = -1, scopes = 0;
            while ((src = next_field(&sr, &sf)) > 0) {
                if (sf.wire_type != 2 || (sf.number != 1 && sf.number != 2)) continue;
                if (sf.number == 1) scopes++;
                else k++;
                if (overlaps(h, (size_t)(sf.data - base), (size_t)(sf.data - base) + sf.len) &&
                    add_located(out, base, &sf, h, ri, si, sf.number == 1 ? -1 : k) < 0)
                    return -1;
            }
            if (src < 0) {
                PyErr_SetString(PyExc_ValueError, "malformed scope list");
                return -1;
            }
            if (scopes > 1) return 1;
        }
    }
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed resource list");
        return -1;
    }
    return resources > 1 ? 1 : 0;
}

PyDoc_STRVAR(locate_doc,
             "locate(request, matches) -> dict | None\n\n"
             "Which resources, scopes and items of a serialized Export*ServiceRequest overlap\n"
             "the byte ranges [start, end) in `matches`, and in which of their length-delimited\n"
             "fields: {(resource index, scope index or -1, item index or -1): {(field number,\n"
             "occurrence index)}}. None when a resource or scope to look into is split over\n"
             "several fields (a client's encoding the parser merges); ValueError when malformed.");

/* locate (a dict of sets) or locate_fields (a list of pairs, sorted by place). */
static PyObject *locate_into(PyObject *args, const char *format, int by_number) {
    Py_buffer request;
    PyObject *match_list, *out = NULL;
    if (!PyArg_ParseTuple(args, format, &request, &PyList_Type, &match_list)) return NULL;
    Ranges h;
    if (read_ranges(match_list, &h) < 0) {
        PyBuffer_Release(&request);
        return NULL;
    }
    out = by_number ? PyList_New(0) : PyDict_New();
    if (out == NULL) goto done;
    const uint8_t *base = (const uint8_t *)request.buf;
    Reader r = reader(base, (size_t)request.len);
    Field f;
    int rc;
    long ri = -1;
    while (h.n && (rc = next_field(&r, &f)) > 0) {
        if (f.number != 1 || f.wire_type != 2) continue;
        ri++;
        if (!overlaps(&h, (size_t)(f.data - base), (size_t)(f.data - base) + f.len)) continue;
        int located = locate_resource(out, base, &f, &h, ri);
        if (located != 0) {
            Py_CLEAR(out);
            if (located > 0) out = Py_NewRef(Py_None);
            goto done;
        }
    }
    if (h.n && rc < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed request");
        Py_CLEAR(out);
    }
    /* A resource's own fields may follow its scopes in a client's encoding. Places are
     * unique, so the sort never compares two field dicts. */
    if (by_number && out != NULL && PyList_Sort(out) < 0) Py_CLEAR(out);
done:
    PyMem_Free(h.starts);
    PyBuffer_Release(&request);
    return out;
}

static PyObject *locate(PyObject *self, PyObject *args) { return locate_into(args, "y*O!:locate", 0); }

PyDoc_STRVAR(locate_fields_doc,
             "locate_fields(request, matches) -> list | None\n\n"
             "locate's answer in the shape pii_redaction walks: [(place, {field number:\n"
             "[occurrence indexes, highest first]})], sorted by place. None and ValueError as\n"
             "locate.");

static PyObject *locate_fields(PyObject *self, PyObject *args) {
    return locate_into(args, "y*O!:locate_fields", 1);
}

/* ------------------------------------------------------------------------ splice */

/* An edit of splice(): the message at (ri, si, i) -- a resource when si < 0, a scope
 * when i < 0, else the i-th item of the scope -- replaced by `payload`, or extended by
 * it when `append` (a serialized message followed by more fields parses as the merge). */
typedef struct {
    long ri, si, i;
    const uint8_t *payload;
    size_t payload_len;
    int append;
    int done;
} Edit;

/* A region of the request replaced by new bytes: the output is built in one copy. A
 * patch with `insert` NULL inserts its own `varint` (patches move as the array grows
 * and is sorted, so nothing may point into one). */
typedef struct {
    size_t pos, remove;
    const uint8_t *insert;
    size_t insert_len;
    uint8_t varint[10];
} Patch;

typedef struct {
    const uint8_t *base;
    Patch *patches;
    size_t n_patches, cap_patches;
} Splice;

static Patch *add_patch(Splice *sp, size_t pos, size_t remove) {
    if (sp->n_patches == sp->cap_patches) {
        size_t cap = sp->cap_patches ? sp->cap_patches * 2 : 16;
        Patch *grown = PyMem_Realloc(sp->patches, cap * sizeof(Patch));
        if (grown == NULL) return NULL;
        sp->patches = grown;
        sp->cap_patches = cap;
    }
    Patch *p = &sp->patches[sp->n_patches++];
    p->pos = pos;
    p->remove = remove;
    p->insert = NULL;
    p->insert_len = 0;
    return p;
}

/* The length prefix of the field whose payload is `f` (read from `tag_start`) rewritten
 * for a payload of `new_len` bytes; returns the change in the field's encoded size, or
 * -1 on a failed allocation. */
static long long rewrite_length(Splice *sp, const uint8_t *tag_start, const Field *f, uint64_t new_len) {
    Reader r = reader(tag_start, (size_t)(f->data - tag_start));
    uint64_t tag;
    if (read_varint(&r, &tag) < 0) return -1;
    size_t old_prefix = (size_t)(f->data - r.p);
    Patch *p = add_patch(sp, (size_t)(r.p - sp->base), old_prefix);
    if (p == NULL) return -1;
    uint64_t v = new_len;
    size_t n = 0;
    do {
        uint8_t byte = v & 0x7F;
        v >>= 7;
        p->varint[n++] = byte | (v ? 0x80 : 0);
    } while (v);
    p->insert = NULL;
    p->insert_len = n;
    return (long long)n - (long long)old_prefix + ((long long)new_len - (long long)f->len);
}

/* Applies `e` to the message whose field is `f`: its length and its payload. */
static long long apply_edit(Splice *sp, const uint8_t *tag_start, const Field *f, Edit *e) {
    if (e->done) {
        PyErr_SetString(PyExc_ValueError, "cannot splice: an edit's place is in the request twice");
        return -1;
    }
    e->done = 1;
    uint64_t new_len = e->append ? f->len + e->payload_len : e->payload_len;
    long long delta = rewrite_length(sp, tag_start, f, new_len);
    if (delta == -1 && PyErr_Occurred()) return -1;
    Patch *p = e->append ? add_patch(sp, (size_t)(f->data - sp->base) + f->len, 0)
                         : add_patch(sp, (size_t)(f->data - sp->base), f->len);
    if (p == NULL) return -1;
    p->insert = e->payload;
    p->insert_len = e->payload_len;
    return delta;
}

/* The edits [first, last) that fall inside one message: its own singular message
 * (field 1, the edit whose `inner` index is -1) and its items (field 2, by `inner`).
 * Returns the change in the message's size; -1 on error (exception set). */
static int splice_message(Splice *sp, const Field *outer, Edit *first, Edit *last, int depth, long long *delta) {
    Reader r = reader(outer->data, outer->len);
    Field f;
    const uint8_t *tag_start = r.p;
    int rc, singular = 0;
    long index = -1;
    Edit *next = first;
    Edit *own = NULL;
    if (next < last && (depth == 0 ? next->si : next->i) < 0) own = next++;
    *delta = 0;
    while ((rc = next_field(&r, &f)) > 0) {
        const uint8_t *this_tag = tag_start;
        tag_start = r.p;
        if (f.number == 1) {
            singular++;
            if (own == NULL) continue;
            if (f.wire_type != 2 || singular > 1) goto refuse;
            long long d = apply_edit(sp, this_tag, &f, own);
            if (d < 0 && PyErr_Occurred()) return -1;
            *delta += d;
            continue;
        }
        if (f.number != 2) continue;
        index++;
        if (next >= last) continue;
        long want = depth == 0 ? next->si : next->i;
        if (want < index) goto refuse; /* unsorted or repeated edits */
        if (want > index) continue;
        if (f.wire_type != 2) goto refuse;
        long long d;
        if (depth == 0) {
            Edit *end = next;
            while (end < last && end->si == next->si) end++;
            if (splice_message(sp, &f, next, end, 1, &d) < 0) return -1;
            /* the scope's own change in size, plus its length prefix's */
            d = rewrite_length(sp, this_tag, &f, (uint64_t)((long long)f.len + d));
            if (d == -1 && PyErr_Occurred()) return -1;
            next = end;
        } else {
            d = apply_edit(sp, this_tag, &f, next);
            if (d < 0 && PyErr_Occurred()) return -1;
            next++;
        }
        *delta += d;
    }
    if (rc < 0 || next < last || (own != NULL && !own->done)) goto refuse;
    return 0;
refuse:
    PyErr_SetString(PyExc_ValueError, "cannot splice: an edit's place is not in the request once");
    return -1;
}

static int by_position(const void *a, const void *b) {
    size_t x = ((const Patch *)a)->pos, y = ((const Patch *)b)->pos;
    return x < y ? -1 : x > y;
}

static int read_edits(PyObject *list, Edit *edits, Py_ssize_t n) {
    for (Py_ssize_t k = 0; k < n; k++) {
        PyObject *item = PyList_GET_ITEM(list, k);
        Py_buffer payload;
        int append;
        Edit *e = &edits[k];
        if (!PyTuple_Check(item) ||
            !PyArg_ParseTuple(item, "llly*p:splice edit", &e->ri, &e->si, &e->i, &payload, &append))
            return -1;
        /* the list holds the bytes alive for the call; only bytes are taken */
        if (!PyBytes_Check(payload.obj)) {
            PyBuffer_Release(&payload);
            PyErr_SetString(PyExc_TypeError, "splice: payloads must be bytes");
            return -1;
        }
        e->payload = (const uint8_t *)payload.buf;
        e->payload_len = (size_t)payload.len;
        PyBuffer_Release(&payload);
        e->append = append;
        e->done = 0;
        if (e->ri < 0 || (e->si < 0 && e->i >= 0) || (k > 0 && (e->ri < edits[k - 1].ri ||
            (e->ri == edits[k - 1].ri && (e->si < edits[k - 1].si ||
            (e->si == edits[k - 1].si && e->i <= edits[k - 1].i)))))) {
            PyErr_SetString(PyExc_ValueError, "splice: edits must be distinct and sorted by place");
            return -1;
        }
    }
    return 0;
}

PyDoc_STRVAR(splice_doc,
             "splice(request, edits) -> bytes\n\n"
             "A serialized Export{Trace,Logs,Metrics}ServiceRequest with messages replaced or\n"
             "extended, without re-serializing the rest: `edits` is a list of (resource index,\n"
             "scope index, item index, payload, append), sorted by place, where a scope index\n"
             "of -1 names the resource and an item index of -1 the scope. The enclosing\n"
             "messages' lengths are rewritten. ValueError when a place is not in the request,\n"
             "or a resource or scope to edit is split over several fields.");

static PyObject *splice(PyObject *self, PyObject *args) {
    Py_buffer request;
    PyObject *edit_list, *out = NULL;
    if (!PyArg_ParseTuple(args, "y*O!:splice", &request, &PyList_Type, &edit_list)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(edit_list);
    Edit *edits = PyMem_Calloc(n ? (size_t)n : 1, sizeof(Edit));
    Splice sp = {(const uint8_t *)request.buf, NULL, 0, 0};
    if (edits == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (read_edits(edit_list, edits, n) < 0) goto done;
    Reader r = reader(sp.base, (size_t)request.len);
    Field f;
    const uint8_t *tag_start = r.p;
    int rc;
    long ri = -1;
    Py_ssize_t k = 0;
    while (k < n && (rc = next_field(&r, &f)) > 0) {
        const uint8_t *this_tag = tag_start;
        tag_start = r.p;
        if (f.number != 1) continue;
        ri++;
        if (edits[k].ri != ri) continue;
        if (f.wire_type != 2) break;
        Py_ssize_t end = k;
        while (end < n && edits[end].ri == ri) end++;
        long long d;
        if (splice_message(&sp, &f, &edits[k], &edits[end], 0, &d) < 0) goto done;
        if (rewrite_length(&sp, this_tag, &f, (uint64_t)((long long)f.len + d)) == -1 && PyErr_Occurred())
            goto done;
        k = end;
    }
    if (k < n) {
        PyErr_SetString(PyExc_ValueError, "cannot splice: an edit's place is not in the request");
        goto done;
    }
    qsort(sp.patches, sp.n_patches, sizeof(Patch), by_position);
    size_t size = (size_t)request.len;
    for (size_t p = 0; p < sp.n_patches; p++) size = size - sp.patches[p].remove + sp.patches[p].insert_len;
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (out == NULL) goto done;
    uint8_t *w = (uint8_t *)PyBytes_AS_STRING(out);
    size_t from = 0;
    for (size_t p = 0; p < sp.n_patches; p++) {
        const Patch *patch = &sp.patches[p];
        memcpy(w, sp.base + from, patch->pos - from);
        w += patch->pos - from;
        if (patch->insert_len) memcpy(w, patch->insert != NULL ? patch->insert : patch->varint, patch->insert_len);
        w += patch->insert_len;
        from = patch->pos + patch->remove;
    }
    memcpy(w, sp.base + from, (size_t)request.len - from);
done:
    PyMem_Free(sp.patches);
    PyMem_Free(edits);
    PyBuffer_Release(&request);
    return out;
}

static PyMethodDef methods[] = {
    {"spans", spans, METH_VARARGS, spans_doc},
    {"table", table, METH_VARARGS, table_doc},
    {"positions", positions, METH_VARARGS, positions_doc},
    {"splice", splice, METH_VARARGS, splice_doc},
    {"locate", locate, METH_VARARGS, locate_doc},
    {"locate_fields", locate_fields, METH_VARARGS, locate_fields_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_spanscan", "Wanted span attributes from serialized OTLP requests; patched requests.", -1,
    methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__spanscan(void) { return PyModule_Create(&module); }
