/*
 * SeriesTable: the anomaly processor's series, least recently used first, and its
 * per-span loop over serialized ExportTraceServiceRequests.
 *
 * Why in C: the Python loop costs ~2.5 us per span (a row of Python values from the
 * span scan, a key tuple, an OrderedDict lookup and move, up to four detector calls),
 * several times what receiving the span costs. Here a span costs its walk, a hash of
 * its key bytes and the detectors' C update steps; Python objects are made per new
 * series and per flagged span only. processor.py keeps the Python loop as the fallback
 * and the reference the tests compare this with: both update the same detectors in
 * the same order with the same doubles.
 *
 * SeriesTable(max_series, new_series, new_detector, kind_names, keys, resource_keys,
 *             genai_plan, non_genai_plan, value_slots, kinds_on, threshold_z,
 *             error_threshold_z, score_k)
 *   A series key is (is GenAI, *dimension texts). `new_series(key)` makes the series
 *   object of a new key; `new_detector(kind index)` a detector for one of `kind_names`
 *   (latency, error_rate, tokens, cost: the series' attribute names too), created on
 *   the first value of its kind unless the series already holds one. The other
 *   arguments are the processor's scan plan: `keys`/`resource_keys` the span and
 *   resource attribute keys read, a plan's entries (slot in keys or -1 for the span
 *   name, slot in resource_keys) per dimension, `value_slots` the slots of operation,
 *   provider, input tokens, output tokens, cost, anomaly.flagged, anomaly.kinds,
 *   anomaly.score, `kinds_on` which kinds are detected.
 * .touch(key) -> series or None (a hit becomes the most recent), .insert(key, series),
 * .pop_oldest() -> (key, series), .keys() and .values() (oldest first), len().
 * .flag(request, clock_ns) -> (events, clock_ns) or None
 *   Updates the detectors with every span of the serialized request. `events`, in span
 *   order: (ri, si, i, series, kinds, score, end_ns) for a span to flag, (ri, si, i,
 *   None, None, 0.0, 0) for one holding anomaly.* attributes to remove, and (-1, 0, 0,
 *   key, None, 0.0, 0) for a series evicted. None, with nothing changed, when the code
 *   declines the request (malformed, a key text that is not valid UTF-8 or is bytes):
 *   the caller then runs its Python loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include "_wire.h"
#include "_spanwalk.h"
#include "_detector.h"

enum { K_LATENCY, K_ERROR_RATE, K_TOKENS, K_COST, N_KINDS };
enum { V_OP, V_PROVIDER, V_IN, V_OUT, V_COST, V_FLAGGED, V_KINDS, V_SCORE, N_VALUE_SLOTS };

#define STATUS_CODE_ERROR 2
#define MAX_DIMENSIONS 64

typedef struct {
    uint64_t hash;
    uint8_t *key; /* encoded: the GenAI byte, then per dimension a 4-byte length and the text */
    size_t key_len;
    PyObject *key_tuple, *series;
    PyObject *detector[N_KINDS]; /* NULL until first needed */
    Py_ssize_t older, newer;     /* LRU links (-1: none); `newer` also links the free list */
} Entry;

/* What phase 1 reads from a span; its key bytes are in the arena. */
typedef struct {
    int ri, si, i;
    int genai, failed, has_in, has_out, has_cost, has_anomaly;
    uint64_t start, end, hash;
    double tokens_in, tokens_out, cost;
    size_t key_off, key_len;
} SpanRecord;

typedef struct {
    int span_slot, resource_slot;
} PlanItem;

typedef struct {
    PyObject_HEAD
    Entry *entries;
    Py_ssize_t used, capacity, free_head, count, oldest, newest, max_series;
    Py_ssize_t *slots; /* open addressing, linear probing: entry index + 1, 0 free */
    size_t mask;
    PyObject *new_series, *new_detector, *kind_names, *keys_tuple, *resource_keys_tuple;
    Key keys[MAX_KEYS], resource_keys[MAX_KEYS];
    Py_ssize_t n_keys, n_resource_keys;
    KeyIndex key_index, resource_key_index;
    PlanItem plan[2][MAX_DIMENSIONS]; /* [0] non-GenAI, [1] GenAI */
    int plan_len[2];
    int value_slot[N_VALUE_SLOTS];
    int on[N_KINDS];
    double threshold_z, error_threshold_z, score_k;
    Buffer arena;   /* the key bytes of one flag() call's spans */
    Buffer scratch; /* a key encoded by touch() or insert() */
    SpanRecord *records;
    size_t n_records, records_cap;
} SeriesTable;

/* ------------------------------------------------------------------ key bytes */

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t h = hash_text(0x243F6A8885A308D3ULL, p, n);
    return h ^ (h >> 32);
}

/* Python's strict UTF-8 decoder's rules: no overlong forms, surrogates or code points
 * past U+10FFFF. */
static int valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        /* Dimension texts are mostly ASCII: eight bytes per test. */
        uint64_t word;
        if (n - i >= 8 && (memcpy(&word, s + i, 8), (word & 0x8080808080808080ULL) == 0)) {
            i += 8;
            continue;
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i <= extra || s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k <= extra; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return 0;
        i += extra + 1;
    }
    return 1;
}

static int put_byte(Buffer *b, uint8_t byte) {
    if (buffer_reserve(b, 1) < 0) return -1;
    b->data[b->len++] = byte;
    return 0;
}

static int put_text(Buffer *b, const void *data, size_t len) {
    if (len > UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a key text over 4 GiB");
        return -1;
    }
    if (buffer_reserve(b, len + 4) < 0) return -1;
    uint32_t n = (uint32_t)len;
    memcpy(b->data + b->len, &n, 4);
    if (len) memcpy(b->data + b->len + 4, data, len);
    b->len += len + 4;
    return 0;
}

/* A dimension's text from an AnyValue, as processor._text renders the value the span
 * scan converts: str as is, bool/int/float as str() writes them, absent, arrays, maps
 * and empty values "". ValueError (declined) for bytes and text not valid UTF-8. */
static int put_value_text(Buffer *b, const uint8_t *data, size_t len) {
    Value v;
    if (data == NULL) return put_text(b, "", 0);
    if (parse_value(data, len, &v) < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed AnyValue");
        return -1;
    }
    char number[32];
    switch (v.kind) {
    case V_STRING:
        if (!valid_utf8(v.data, v.len)) {
            PyErr_SetString(PyExc_ValueError, "a key text is not valid UTF-8");
            return -1;
        }
        return put_text(b, v.data, v.len);
    case V_BOOL: return v.scalar ? put_text(b, "True", 4) : put_text(b, "False", 5);
    case V_INT: {
        int n = snprintf(number, sizeof number, "%lld", (long long)(int64_t)v.scalar);
        return put_text(b, number, (size_t)n);
    }
    case V_DOUBLE: {
        double d;
        memcpy(&d, &v.scalar, sizeof d);
        char *repr = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (repr == NULL) return -1;
        int rc = put_text(b, repr, strlen(repr));
        PyMem_Free(repr);
        return rc;
    }
    case V_BYTES:
        PyErr_SetString(PyExc_ValueError, "a bytes key value");
        return -1;
    default: return put_text(b, "", 0);
    }
}

/* The Python key (bool, *str) encoded into `scratch` as the arena holds keys; 0, or -1
 * with an exception set. */
static int encode_key(SeriesTable *t, PyObject *key) {
    Buffer *b = &t->scratch;
    b->len = 0;
    if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) < 1 || !PyBool_Check(PyTuple_GET_ITEM(key, 0))) {
        PyErr_SetString(PyExc_TypeError, "a series key is a tuple (bool, *str)");
        return -1;
    }
    if (put_byte(b, PyTuple_GET_ITEM(key, 0) == Py_True) < 0) return -1;
    for (Py_ssize_t k = 1; k < PyTuple_GET_SIZE(key); k++) {
        PyObject *item = PyTuple_GET_ITEM(key, k);
        if (!PyUnicode_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "a series key is a tuple (bool, *str)");
            return -1;
        }
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(item, &len);
        if (text == NULL || put_text(b, text, (size_t)len) < 0) return -1;
    }
    return 0;
}

static PyObject *decode_key(const uint8_t *key, size_t len) {
    Py_ssize_t parts = 1;
    for (size_t at = 1; at + 4 <= len; parts++) {
        uint32_t n;
        memcpy(&n, key + at, 4);
        at += 4 + n;
    }
    PyObject *tuple = PyTuple_New(parts);
    if (tuple == NULL) return NULL;
    PyTuple_SET_ITEM(tuple, 0, PyBool_FromLong(key[0]));
    size_t at = 1;
    for (Py_ssize_t k = 1; k < parts; k++) {
        uint32_t n;
        memcpy(&n, key + at, 4);
        PyObject *text = PyUnicode_DecodeUTF8((const char *)key + at + 4, (Py_ssize_t)n, "strict");
        if (text == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, k, text);
        at += 4 + n;
    }
    return tuple;
}

/* ------------------------------------------------------------------ the table */

static Py_ssize_t find(const SeriesTable *t, const uint8_t *key, size_t len, uint64_t hash, size_t *slot) {
    if (t->slots == NULL) return -1;
    for (size_t s = hash & t->mask;; s = (s + 1) & t->mask) {
        Py_ssize_t e = t->slots[s] - 1;
        if (e < 0) {
            *slot = s;
            return -1;
        }
        const Entry *entry = &t->entries[e];
        if (entry->hash == hash && entry->key_len == len && memcmp(entry->key, key, len) == 0) {
            *slot = s;
            return e;
        }
    }
}

static int grow_slots(SeriesTable *t) {
    size_t n_slots = t->slots == NULL ? 64 : (t->mask + 1) * 2;
    Py_ssize_t *slots = PyMem_Calloc(n_slots, sizeof *slots);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = n_slots - 1;
    for (Py_ssize_t e = t->newest; e >= 0; e = t->entries[e].older) {
        size_t s = t->entries[e].hash & mask;
        while (slots[s]) s = (s + 1) & mask;
        slots[s] = e + 1;
    }
    PyMem_Free(t->slots);
    t->slots = slots;
    t->mask = mask;
    return 0;
}

static void unlink_entry(SeriesTable *t, Py_ssize_t e) {
    Entry *entry = &t->entries[e];
    if (entry->older >= 0) t->entries[entry->older].newer = entry->newer;
    else t->oldest = entry->newer;
    if (entry->newer >= 0) t->entries[entry->newer].older = entry->older;
    else t->newest = entry->older;
}

static void link_newest(SeriesTable *t, Py_ssize_t e) {
    Entry *entry = &t->entries[e];
    entry->older = t->newest;
    entry->newer = -1;
    if (t->newest >= 0) t->entries[t->newest].newer = e;
    else t->oldest = e;
    t->newest = e;
}

static void touch_entry(SeriesTable *t, Py_ssize_t e) {
    if (t->newest == e) return;
    unlink_entry(t, e);
    link_newest(t, e);
}

/* Takes the references to key_tuple and series; the entry index, or -1 with an
 * exception set (then the references are released). */
static Py_ssize_t insert_entry(SeriesTable *t, const uint8_t *key, size_t len, uint64_t hash, PyObject *key_tuple,
                               PyObject *series) {
    if ((t->slots == NULL || (size_t)(t->count + 1) * 2 > t->mask + 1) && grow_slots(t) < 0) goto failed;
    Py_ssize_t e = t->free_head;
    if (e >= 0) {
        t->free_head = t->entries[e].newer;
    } else {
        if (t->used == t->capacity) {
            Py_ssize_t cap = t->capacity ? t->capacity * 2 : 64;
            Entry *grown = PyMem_Realloc(t->entries, (size_t)cap * sizeof *grown);
            if (grown == NULL) {
                PyErr_NoMemory();
                goto failed;
            }
            t->entries = grown;
            t->capacity = cap;
        }
        e = t->used++;
    }
    Entry *entry = &t->entries[e];
    memset(entry, 0, sizeof *entry);
    entry->key = PyMem_Malloc(len ? len : 1);
    if (entry->key == NULL) {
        entry->newer = t->free_head;
        t->free_head = e;
        PyErr_NoMemory();
        goto failed;
    }
    memcpy(entry->key, key, len);
    entry->key_len = len;
    entry->hash = hash;
    entry->key_tuple = key_tuple;
    entry->series = series;
    size_t s = hash & t->mask;
    while (t->slots[s]) s = (s + 1) & t->mask;
    t->slots[s] = e + 1;
    link_newest(t, e);
    t->count++;
    return e;
failed:
    Py_DECREF(key_tuple);
    Py_DECREF(series);
    return -1;
}

/* Removes the entry at `slot` (backward-shift deletion keeps probe runs unbroken) and
 * hands its key and series to the caller as a new (key, series) tuple's references. */
static void remove_entry(SeriesTable *t, size_t slot, PyObject **key_tuple, PyObject **series) {
    Py_ssize_t e = t->slots[slot] - 1;
    size_t i = slot;
    for (size_t j = (i + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask) {
        size_t home = t->entries[t->slots[j] - 1].hash & t->mask;
        /* Moves back unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i] = 0;
    unlink_entry(t, e);
    Entry *entry = &t->entries[e];
    *key_tuple = entry->key_tuple;
    *series = entry->series;
    for (int k = 0; k < N_KINDS; k++) Py_CLEAR(entry->detector[k]);
    PyMem_Free(entry->key);
    entry->key = NULL;
    entry->key_tuple = entry->series = NULL;
    entry->newer = t->free_head;
    t->free_head = e;
    t->count--;
}

/* (key, series) of the least recently used series, removed. */
static PyObject *pop_oldest_pair(SeriesTable *t) {
    if (t->oldest < 0) {
        PyErr_SetString(PyExc_KeyError, "pop_oldest(): the table is empty");
        return NULL;
    }
    const Entry *entry = &t->entries[t->oldest];
    size_t slot;
    find(t, entry->key, entry->key_len, entry->hash, &slot);
    PyObject *key, *series;
    remove_entry(t, slot, &key, &series);
    PyObject *pair = PyTuple_Pack(2, key, series);
    Py_DECREF(key);
    Py_DECREF(series);
    return pair;
}

/* The series' detector of `kind`: the one it holds, else a new one it is given. */
static PyObject *detector_of(SeriesTable *t, Entry *entry, int kind) {
    if (entry->detector[kind] != NULL) return entry->detector[kind];
    PyObject *name = PyTuple_GET_ITEM(t->kind_names, kind);
    PyObject *detector = PyObject_GetAttr(entry->series, name);
    if (detector == NULL) return NULL;
    if (detector == Py_None) {
        Py_DECREF(detector);
        detector = PyObject_CallFunction(t->new_detector, "i", kind);
        if (detector == NULL) return NULL;
        if (PyObject_SetAttr(entry->series, name, detector) < 0) {
            Py_DECREF(detector);
            return NULL;
        }
    }
    PyTypeObject *type = kind == K_ERROR_RATE ? error_share_core_type : detector_core_type;
    if (!PyObject_TypeCheck(detector, type)) {
        PyErr_Format(PyExc_TypeError, "the %U detector is %.100s, not a %.100s", name, Py_TYPE(detector)->tp_name,
                     type->tp_name);
        Py_DECREF(detector);
        return NULL;
    }
    entry->detector[kind] = detector;
    return detector;
}

/* ------------------------------------------------------------ phase 1: read */

typedef struct {
    SpanWalk walk;
    SeriesTable *table;
    const uint8_t *resource_data[MAX_KEYS];
    size_t resource_len[MAX_KEYS];
} ReadWalk;

static int keep_resource_value(const Pair *kv, void *state) {
    ReadWalk *w = state;
    SeriesTable *t = w->table;
    int k = find_key(&t->resource_key_index, kv->key, kv->key_len);
    if (k >= 0) { /* the last occurrence, as the span scan reads it */
        w->resource_data[k] = kv->value;
        w->resource_len[k] = kv->value_len;
    }
    return 0;
}

static int read_resource(SpanWalk *walk, const uint8_t *resource_spans, size_t len) {
    ReadWalk *w = (ReadWalk *)walk;
    memset(w->resource_data, 0, sizeof w->resource_data);
    if (each_resource_attribute(resource_spans, len, keep_resource_value, w) < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed Resource");
        return -1;
    }
    return 0;
}

/* A number as processor._number reads it: int (not bool) or float. */
static int read_number(const SpanFields *s, int slot, double *out) {
    if (!s->found[slot]) return 0;
    Value v;
    if (parse_value(s->found_data[slot], s->found_len[slot], &v) < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed AnyValue");
        return -1;
    }
    if (v.kind == V_INT) {
        *out = (double)(int64_t)v.scalar;
        return 1;
    }
    if (v.kind == V_DOUBLE) {
        memcpy(out, &v.scalar, sizeof *out);
        return 1;
    }
    return 0;
}

static int read_span_record(SpanWalk *walk, const uint8_t *msg, size_t len, int ri, int si, int i) {
    ReadWalk *w = (ReadWalk *)walk;
    SeriesTable *t = w->table;
    SpanFields s;
    if (read_span(msg, len, &t->key_index, &s) < 0) return -1;
    const int *slot = t->value_slot;
    int genai = s.found[slot[V_OP]] || s.found[slot[V_PROVIDER]];
    int n_dims = t->plan_len[genai];
    if (n_dims == 0) return 0;
    if (t->n_records == t->records_cap) {
        size_t cap = t->records_cap ? t->records_cap * 2 : 256;
        SpanRecord *grown = PyMem_Realloc(t->records, cap * sizeof *grown);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->records = grown;
        t->records_cap = cap;
    }
    SpanRecord *r = &t->records[t->n_records];
    memset(r, 0, sizeof *r);
    r->ri = ri;
    r->si = si;
    r->i = i;
    r->genai = genai;
    r->failed = enum_value(s.code) == STATUS_CODE_ERROR;
    r->start = s.start;
    r->end = s.end;
    Buffer *arena = &t->arena;
    r->key_off = arena->len;
    if (put_byte(arena, (uint8_t)genai) < 0) return -1;
    for (int d = 0; d < n_dims; d++) {
        const PlanItem *p = &t->plan[genai][d];
        int rc;
        if (p->span_slot < 0) {
            if (!valid_utf8(s.name, s.name_len)) {
                PyErr_SetString(PyExc_ValueError, "a span name is not valid UTF-8");
                return -1;
            }
            rc = put_text(arena, s.name, s.name_len);
        } else if (s.found[p->span_slot]) {
            rc = put_value_text(arena, s.found_data[p->span_slot], s.found_len[p->span_slot]);
        } else {
            rc = put_value_text(arena, w->resource_data[p->resource_slot], w->resource_len[p->resource_slot]);
        }
        if (rc < 0) return -1;
    }
    r->key_len = arena->len - r->key_off;
    r->hash = hash_bytes(arena->data + r->key_off, r->key_len);
    if (genai) {
        int rc;
        if ((rc = read_number(&s, slot[V_IN], &r->tokens_in)) < 0) return -1;
        r->has_in = rc;
        if ((rc = read_number(&s, slot[V_OUT], &r->tokens_out)) < 0) return -1;
        r->has_out = rc;
        if ((rc = read_number(&s, slot[V_COST], &r->cost)) < 0) return -1;
        r->has_cost = rc;
    }
    r->has_anomaly = s.found[slot[V_FLAGGED]] || s.found[slot[V_KINDS]] || s.found[slot[V_SCORE]];
    t->n_records++;
    return 0;
}

/* ---------------------------------------------------------- phase 2: detect */

static int append_event(PyObject *events, int ri, int si, int i, PyObject *series, PyObject *kinds, double score,
                        uint64_t end) {
    PyObject *event = Py_BuildValue("(iiiOOdK)", ri, si, i, series, kinds, score, (unsigned long long)end);
    if (event == NULL) return -1;
    int rc = PyList_Append(events, event);
    Py_DECREF(event);
    return rc;
}

/* The series of a record, created (and the oldest evicted past max_series) when new. */
static Entry *series_for(SeriesTable *t, const SpanRecord *r, PyObject *events) {
    const uint8_t *key = t->arena.data + r->key_off;
    size_t slot;
    Py_ssize_t e = find(t, key, r->key_len, r->hash, &slot);
    if (e >= 0) {
        touch_entry(t, e);
        return &t->entries[e];
    }
    PyObject *key_tuple = decode_key(key, r->key_len);
    if (key_tuple == NULL) return NULL;
    PyObject *series = PyObject_CallOneArg(t->new_series, key_tuple);
    if (series == NULL) {
        Py_DECREF(key_tuple);
        return NULL;
    }
    e = insert_entry(t, key, r->key_len, r->hash, key_tuple, series);
    if (e < 0) return NULL;
    while (t->count > t->max_series) {
        PyObject *evicted = pop_oldest_pair(t);
        if (evicted == NULL) return NULL;
        int rc = append_event(events, -1, 0, 0, PyTuple_GET_ITEM(evicted, 0), Py_None, 0.0, 0);
        Py_DECREF(evicted);
        if (rc < 0) return NULL;
    }
    return &t->entries[e];
}

/* Updates one detector; 1 when its z reaches `threshold`, 0 when not, -1 on error. */
static int update_value(SeriesTable *t, Entry *entry, int kind, double time_s, double value, double *z) {
    DetectorCore *d = (DetectorCore *)detector_of(t, entry, kind);
    double score;
    if (d == NULL || detector_step(d, time_s, value, &score) < 0) return -1;
    *z = d->last_z;
    return *z >= t->threshold_z;
}

static int detect(SeriesTable *t, const SpanRecord *r, uint64_t *clock, PyObject *events) {
    Entry *entry = series_for(t, r, events);
    if (entry == NULL) return -1;
    uint64_t end = r->end ? r->end : r->start;
    if (end > *clock) *clock = end;
    double time_s = (double)end * 1e-9, z, peak = 0.0;
    int flagged[N_KINDS] = {0}, any = 0, hit;
    if (t->on[K_LATENCY] && r->start && end >= r->start) {
        if ((hit = update_value(t, entry, K_LATENCY, time_s, (double)(end - r->start) * 1e-9, &z)) < 0) return -1;
        if (hit) {
            flagged[K_LATENCY] = any = 1;
            peak = z;
        }
    }
    if (t->on[K_ERROR_RATE]) {
        ErrorShareCore *e = (ErrorShareCore *)detector_of(t, entry, K_ERROR_RATE);
        double score;
        /* Only failing calls can be flagged: only theirs is the surprise computed. */
        if (e == NULL || error_share_step(e, time_s, r->failed ? 1.0 : 0.0, r->failed, &score) < 0) return -1;
        z = e->last_z;
        if (r->failed && z >= t->error_threshold_z) {
            flagged[K_ERROR_RATE] = any = 1;
            if (z > peak) peak = z;
        }
    }
    if (r->genai && t->on[K_TOKENS] && (r->has_in || r->has_out)) {
        /* (in or 0.0) + (out or 0.0), as Python's truthiness reads them */
        double tokens_in = r->has_in && r->tokens_in != 0.0 ? r->tokens_in : 0.0;
        double tokens_out = r->has_out && r->tokens_out != 0.0 ? r->tokens_out : 0.0;
        if ((hit = update_value(t, entry, K_TOKENS, time_s, tokens_in + tokens_out, &z)) < 0) return -1;
        if (hit) {
            flagged[K_TOKENS] = any = 1;
            if (z > peak) peak = z;
        }
    }
    if (r->genai && t->on[K_COST] && r->has_cost) {
        if ((hit = update_value(t, entry, K_COST, time_s, r->cost, &z)) < 0) return -1;
        if (hit) {
            flagged[K_COST] = any = 1;
            if (z > peak) peak = z;
        }
    }
    if (!any) return r->has_anomaly ? append_event(events, r->ri, r->si, r->i, Py_None, Py_None, 0.0, 0) : 0;
    PyObject *kinds = PyList_New(0);
    if (kinds == NULL) return -1;
    for (int k = 0; k < N_KINDS; k++)
        if (flagged[k] && PyList_Append(kinds, PyTuple_GET_ITEM(t->kind_names, k)) < 0) {
            Py_DECREF(kinds);
            return -1;
        }
    int rc = append_event(events, r->ri, r->si, r->i, entry->series, kinds, peak / (peak + t->score_k), end);
    Py_DECREF(kinds);
    return rc;
}

static PyObject *table_flag(SeriesTable *t, PyObject *args) {
    Py_buffer request;
    unsigned long long clock_in;
    if (!PyArg_ParseTuple(args, "y*K:flag", &request, &clock_in)) return NULL;
    if (t->new_series == NULL) {
        PyBuffer_Release(&request);
        PyErr_SetString(PyExc_RuntimeError, "SeriesTable.__init__ was not called");
        return NULL;
    }
    t->arena.len = 0;
    t->n_records = 0;
    ReadWalk w = {{read_resource, read_span_record, no_end_resource, NULL}, t, {0}, {0}};
    PyObject *unused = walk(&request, &w.walk);
    Py_XDECREF(unused);
    if (unused == NULL) {
        PyBuffer_Release(&request);
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) return NULL;
        PyErr_Clear();
        Py_RETURN_NONE; /* declined: nothing has changed */
    }
    PyObject *events = PyList_New(0);
    uint64_t clock = clock_in;
    for (size_t k = 0; events != NULL && k < t->n_records; k++)
        if (detect(t, &t->records[k], &clock, events) < 0) Py_CLEAR(events);
    PyBuffer_Release(&request);
    if (events == NULL) return NULL;
    return Py_BuildValue("(NK)", events, (unsigned long long)clock);
}

/* ------------------------------------------------------------ Python methods */

static PyObject *table_touch(SeriesTable *t, PyObject *key) {
    if (encode_key(t, key) < 0) return NULL;
    const Buffer *b = &t->scratch;
    size_t slot;
    Py_ssize_t e = find(t, b->data, b->len, hash_bytes(b->data, b->len), &slot);
    if (e < 0) Py_RETURN_NONE;
    touch_entry(t, e);
    return Py_NewRef(t->entries[e].series);
}

static PyObject *table_insert(SeriesTable *t, PyObject *args) {
    PyObject *key, *series;
    if (!PyArg_ParseTuple(args, "OO:insert", &key, &series) || encode_key(t, key) < 0) return NULL;
    const Buffer *b = &t->scratch;
    uint64_t hash = hash_bytes(b->data, b->len);
    size_t slot;
    if (find(t, b->data, b->len, hash, &slot) >= 0) {
        PyErr_SetString(PyExc_KeyError, "the series is already in the table");
        return NULL;
    }
    if (insert_entry(t, b->data, b->len, hash, Py_NewRef(key), Py_NewRef(series)) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *table_pop_oldest(SeriesTable *t, PyObject *unused) { return pop_oldest_pair(t); }

static PyObject *oldest_first(SeriesTable *t, int series) {
    PyObject *out = PyList_New(0);
    for (Py_ssize_t e = t->oldest; out != NULL && e >= 0; e = t->entries[e].newer)
        if (PyList_Append(out, series ? t->entries[e].series : t->entries[e].key_tuple) < 0) Py_CLEAR(out);
    return out;
}

static PyObject *table_keys(SeriesTable *t, PyObject *unused) { return oldest_first(t, 0); }

static PyObject *table_values(SeriesTable *t, PyObject *unused) { return oldest_first(t, 1); }

static Py_ssize_t table_len(SeriesTable *t) { return t->count; }

static int parse_plan(PyObject *plan, SeriesTable *t, int which) {
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) > MAX_DIMENSIONS) {
        PyErr_Format(PyExc_ValueError, "a plan is a tuple of at most %d (span slot, resource slot)", MAX_DIMENSIONS);
        return -1;
    }
    for (Py_ssize_t d = 0; d < PyTuple_GET_SIZE(plan); d++) {
        PlanItem *p = &t->plan[which][d];
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(plan, d), "ii", &p->span_slot, &p->resource_slot)) return -1;
        if (p->span_slot >= t->n_keys ||
            (p->span_slot >= 0 && (p->resource_slot < 0 || p->resource_slot >= t->n_resource_keys))) {
            PyErr_SetString(PyExc_ValueError, "a plan slot is out of range");
            return -1;
        }
    }
    t->plan_len[which] = (int)PyTuple_GET_SIZE(plan);
    return 0;
}

/* The LRU and free lists empty (-1) from allocation on: a table whose __init__ failed
 * or never ran is still cleared, traversed and freed safely. */
static PyObject *table_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    SeriesTable *t = (SeriesTable *)type->tp_alloc(type, 0);
    if (t != NULL) t->oldest = t->newest = t->free_head = -1;
    return (PyObject *)t;
}

static int table_init(SeriesTable *t, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"max_series", "new_series", "new_detector", "kind_names", "keys", "resource_keys",
                             "genai_plan", "non_genai_plan", "value_slots", "kinds_on", "threshold_z",
                             "error_threshold_z", "score_k", NULL};
    Py_ssize_t max_series;
    PyObject *new_series, *new_detector, *kind_names, *keys, *resource_keys, *genai_plan, *ng_plan, *value_slots;
    PyObject *kinds_on;
    if (t->new_series != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "SeriesTable.__init__ runs once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nOOO!O!O!OOO!O!ddd:SeriesTable", kwlist, &max_series,
                                     &new_series, &new_detector, &PyTuple_Type, &kind_names, &PyTuple_Type, &keys,
                                     &PyTuple_Type, &resource_keys, &genai_plan, &ng_plan, &PyTuple_Type,
                                     &value_slots, &PyTuple_Type, &kinds_on, &t->threshold_z, &t->error_threshold_z,
                                     &t->score_k))
        return -1;
    if (max_series < 1 || PyTuple_GET_SIZE(kind_names) != N_KINDS || PyTuple_GET_SIZE(kinds_on) != N_KINDS ||
        PyTuple_GET_SIZE(value_slots) != N_VALUE_SLOTS) {
        PyErr_Format(PyExc_ValueError, "max_series >= 1, %d kind names and switches, %d value slots", N_KINDS,
                     N_VALUE_SLOTS);
        return -1;
    }
    for (int k = 0; k < N_KINDS; k++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(kind_names, k))) {
            PyErr_SetString(PyExc_TypeError, "kind names are str");
            return -1;
        }
        if ((t->on[k] = PyObject_IsTrue(PyTuple_GET_ITEM(kinds_on, k))) < 0) return -1;
    }
    if (parse_keys(keys, t->keys, &t->n_keys) < 0 ||
        parse_keys(resource_keys, t->resource_keys, &t->n_resource_keys) < 0)
        return -1;
    index_keys(&t->key_index, t->keys, t->n_keys);
    index_keys(&t->resource_key_index, t->resource_keys, t->n_resource_keys);
    for (int v = 0; v < N_VALUE_SLOTS; v++) {
        long slot = PyLong_AsLong(PyTuple_GET_ITEM(value_slots, v));
        if (slot == -1 && PyErr_Occurred()) return -1;
        if (slot < 0 || slot >= t->n_keys) {
            PyErr_SetString(PyExc_ValueError, "a value slot is out of range");
            return -1;
        }
        t->value_slot[v] = (int)slot;
    }
    if (parse_plan(ng_plan, t, 0) < 0 || parse_plan(genai_plan, t, 1) < 0) return -1;
    t->max_series = max_series;
    t->keys_tuple = Py_NewRef(keys); /* keeps the keys' UTF-8 buffers alive */
    t->resource_keys_tuple = Py_NewRef(resource_keys);
    t->kind_names = Py_NewRef(kind_names);
    t->new_detector = Py_NewRef(new_detector);
    t->new_series = Py_NewRef(new_series);
    return 0;
}

static int table_traverse(SeriesTable *t, visitproc visit, void *arg) {
    for (Py_ssize_t e = t->newest; e >= 0; e = t->entries[e].older) {
        Entry *entry = &t->entries[e];
        Py_VISIT(entry->key_tuple);
        Py_VISIT(entry->series);
        for (int k = 0; k < N_KINDS; k++) Py_VISIT(entry->detector[k]);
    }
    Py_VISIT(t->new_series);
    Py_VISIT(t->new_detector);
    Py_VISIT(Py_TYPE(t));
    return 0;
}

static int table_clear(SeriesTable *t) {
    while (t->oldest >= 0) {
        Entry *entry = &t->entries[t->oldest];
        size_t slot;
        find(t, entry->key, entry->key_len, entry->hash, &slot);
        PyObject *key, *series;
        remove_entry(t, slot, &key, &series);
        Py_DECREF(key);
        Py_DECREF(series);
    }
    Py_CLEAR(t->new_series);
    Py_CLEAR(t->new_detector);
    return 0;
}

static void table_dealloc(SeriesTable *t) {
    PyTypeObject *type = Py_TYPE(t);
    PyObject_GC_UnTrack(t);
    table_clear(t);
    Py_CLEAR(t->kind_names);
    Py_CLEAR(t->keys_tuple);
    Py_CLEAR(t->resource_keys_tuple);
    PyMem_Free(t->entries);
    PyMem_Free(t->slots);
    PyMem_Free(t->arena.data);
    PyMem_Free(t->scratch.data);
    PyMem_Free(t->records);
    type->tp_free((PyObject *)t);
    Py_DECREF(type);
}

static PyMethodDef table_methods[] = {
    {"flag", (PyCFunction)table_flag, METH_VARARGS,
     "flag(request, clock_ns) -> (events, clock_ns) or None: see the module comment"},
    {"touch", (PyCFunction)table_touch, METH_O, "touch(key) -> series or None; a hit becomes the most recent"},
    {"insert", (PyCFunction)table_insert, METH_VARARGS, "insert(key, series): a new series, the most recent"},
    {"pop_oldest", (PyCFunction)table_pop_oldest, METH_NOARGS, "pop_oldest() -> (key, series)"},
    {"keys", (PyCFunction)table_keys, METH_NOARGS, "keys() -> the series' keys, least recently used first"},
    {"values", (PyCFunction)table_values, METH_NOARGS, "values() -> the series, least recently used first"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot table_slots[] = {
    {Py_tp_doc, "The anomaly processor's series and per-span loop (see _series.c)."},
    {Py_tp_new, table_new},
    {Py_tp_init, table_init},
    {Py_tp_dealloc, table_dealloc},
    {Py_tp_traverse, table_traverse},
    {Py_tp_clear, table_clear},
    {Py_tp_methods, table_methods},
    {Py_mp_length, table_len},
    {0, NULL},
};

static PyType_Spec table_spec = {
    "processors.anomaly._detector.SeriesTable", sizeof(SeriesTable), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    table_slots,
};

int add_series_table(PyObject *module) {
    PyObject *type = PyType_FromModuleAndSpec(module, &table_spec, NULL);
    if (type == NULL || PyModule_AddObject(module, "SeriesTable", type) < 0) {
        Py_XDECREF(type);
        return -1;
    }
    return 0;
}
