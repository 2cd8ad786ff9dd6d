/*
 * genai_cost's fast path (processor.py, GenAICostProcessor._price_fast): prices every
 * span of a serialized ExportTraceServiceRequest from price entries the processor
 * resolved in Python, and returns the request with each priced span's attributes
 * appended, without a protobuf object or a Python value per span. Appending to a span's
 * objects alone (upb's MergeFromString) costs 0.4-0.9 us, more than this whole pass.
 *
 * Why by hand: no library prices token counts from wire bytes; the reading is
 * otel_receiver/_spanwalk.h's, shared with the other scans.
 *
 * Exactness: a sheet's per-token rates are integers at one decimal scale D (rate x
 * 10^D), so every cost is an exact integer N at that scale. N / 10^D as a double is
 * correctly rounded when N < 2^53 and D <= 22 (both operands exact doubles, one IEEE
 * division), which is what float(Decimal) gives in the Python path. Anything else, and
 * every case the Python path treats specially (legacy names, our attributes already
 * present, token counts that are not non-negative integers, negative remainders, daily
 * price windows), makes the call answer SLOW: the processor then prices the request in
 * Python. The test suite checks the two paths give the same bytes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_wire.h"
#include "_spanwalk.h"

/* Attribute slots of processor.py's scan keys (current names in this order, then the
 * legacy names): keep in step with _CURRENT there. */
enum {
    S_OP, S_PROVIDER, S_REQ_MODEL, S_RESP_MODEL,
    S_IN, S_OUT, S_CACHE_READ, S_CACHE_WRITE, S_REASONING, S_AUDIO_IN, S_AUDIO_OUT, S_CACHE_AUDIO_READ,
    S_FIRST_WRITTEN = 12, S_LAST_WRITTEN = 21, S_TIER = 22, S_REQUEST_TIER = 23, S_CURRENT = 24
};
#define N_TOKENS 8
#define SPAN_KIND_CLIENT 3
/* Token counts at or above this go to the Python path: rate x count x 8 stays in int128. */
#define MAX_TOKENS (1ULL << 50)
#define MAX_COST (1LL << 53)
#define MAX_COMBO 2048
#define HASH_SEED 0x243F6A8885A308D3ULL

enum { STATUS_DONE = 0, STATUS_SLOW = 1, STATUS_MISSING = 2 };
enum { ENTRY_SKIP = 0, ENTRY_SLOW = 1, ENTRY_PRICED = 2 };

typedef struct {
    PyObject *pricing_attr; /* bytes: the encoded gen_ai.cost.pricing attribute */
    double scale;           /* 10^D */
    int64_t per_request;
    Py_ssize_t n_tiers;
    int64_t *tier_starts;   /* ascending */
    int64_t *rates;         /* (n_tiers + 1) x 8 leaf rates, processor.py's leaf order */
} Sheet;

typedef struct {
    uint8_t *key;
    size_t key_len;
    uint64_t hash;
    int kind;
    Py_ssize_t n_starts;
    int64_t *starts;        /* ascending: interval k is [starts[k-1], starts[k]) */
    int *sheets;            /* n_starts + 1 sheet indexes, -1: no price then */
    uint64_t unpriced;      /* spans found unpriced since the last call */
} Entry;

typedef struct {
    PyObject_HEAD
    PyObject *key_tuple;
    Key keys[MAX_KEYS];
    Py_ssize_t n_keys;
    KeyIndex key_index;
    PyObject *prefixes[5];  /* double attribute prefixes: cost, input, output, cache read, cache write */
    PyObject *unpriced_attr;
    Sheet *sheets;
    Py_ssize_t n_sheets, cap_sheets;
    Entry *entries;
    Py_ssize_t n_entries, cap_entries, max_entries;
    int32_t *index;         /* open addressing over entries, -1 empty */
    size_t index_size;      /* power of two, > 2 x max_entries */
} CostTable;

static const double POW10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* ------------------------------------------------------------------ the table */

static void clear_entries(CostTable *t) {
    for (Py_ssize_t i = 0; i < t->n_entries; i++) {
        PyMem_Free(t->entries[i].key);
        PyMem_Free(t->entries[i].starts);
        PyMem_Free(t->entries[i].sheets);
    }
    t->n_entries = 0;
    for (size_t i = 0; i < t->index_size; i++) t->index[i] = -1;
    for (Py_ssize_t i = 0; i < t->n_sheets; i++) {
        Py_CLEAR(t->sheets[i].pricing_attr);
        PyMem_Free(t->sheets[i].tier_starts);
        PyMem_Free(t->sheets[i].rates);
    }
    t->n_sheets = 0;
}

static void table_dealloc(CostTable *t) {
    clear_entries(t);
    PyMem_Free(t->entries);
    PyMem_Free(t->sheets);
    PyMem_Free(t->index);
    Py_XDECREF(t->key_tuple);
    for (int i = 0; i < 5; i++) Py_XDECREF(t->prefixes[i]);
    Py_XDECREF(t->unpriced_attr);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static int table_init(CostTable *t, PyObject *args, PyObject *kwds) {
    PyObject *keys, *prefixes, *unpriced;
    Py_ssize_t max_entries;
    if (!PyArg_ParseTuple(args, "O!O!Sn:CostTable", &PyTuple_Type, &keys, &PyTuple_Type, &prefixes, &unpriced,
                          &max_entries))
        return -1;
    if (PyTuple_GET_SIZE(keys) < S_CURRENT || PyTuple_GET_SIZE(prefixes) != 5 || max_entries < 1 ||
        max_entries > 1000000) {
        PyErr_SetString(PyExc_ValueError, "CostTable: bad keys, prefixes or max_entries");
        return -1;
    }
    if (t->index != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "CostTable: already initialized");
        return -1;
    }
    if (parse_keys(keys, t->keys, &t->n_keys) < 0) return -1;
    index_keys(&t->key_index, t->keys, t->n_keys);
    t->key_tuple = Py_NewRef(keys);
    for (int i = 0; i < 5; i++) {
        PyObject *p = PyTuple_GET_ITEM(prefixes, i);
        if (!PyBytes_Check(p)) {
            PyErr_SetString(PyExc_TypeError, "CostTable: prefixes must be bytes");
            return -1;
        }
        t->prefixes[i] = Py_NewRef(p);
    }
    t->unpriced_attr = Py_NewRef(unpriced);
    t->max_entries = max_entries;
    t->index_size = 16;
    while (t->index_size < (size_t)max_entries * 2 + 1) t->index_size <<= 1;
    t->index = PyMem_Malloc(t->index_size * sizeof *t->index);
    if (t->index == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < t->index_size; i++) t->index[i] = -1;
    return 0;
}

static Entry *find_entry(CostTable *t, const uint8_t *key, size_t len, uint64_t h) {
    for (size_t i = h & (t->index_size - 1);; i = (i + 1) & (t->index_size - 1)) {
        int32_t e = t->index[i];
        if (e < 0) return NULL;
        Entry *en = &t->entries[e];
        if (en->hash == h && en->key_len == len && memcmp(en->key, key, len) == 0) return en;
    }
}

/* Python ints from a tuple into a fresh int64 array (NULL with an exception set). */
static int64_t *int64_array(PyObject *tuple, Py_ssize_t expected) {
    if (!PyTuple_Check(tuple) || (expected >= 0 && PyTuple_GET_SIZE(tuple) != expected)) {
        PyErr_SetString(PyExc_ValueError, "CostTable: a tuple of ints of the wrong length");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    int64_t *out = PyMem_Malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(tuple, i));
        if (v == -1 && PyErr_Occurred()) {
            PyMem_Free(out);
            return NULL;
        }
        out[i] = v;
    }
    return out;
}

static PyObject *add_sheet(CostTable *t, PyObject *args) {
    PyObject *attr, *tiers, *rates;
    int scale;
    long long per_request;
    if (!PyArg_ParseTuple(args, "SiLO!O!:add_sheet", &attr, &scale, &per_request, &PyTuple_Type, &tiers,
                          &PyTuple_Type, &rates))
        return NULL;
    if (scale < 0 || scale > 22 || per_request < 0) {
        PyErr_SetString(PyExc_ValueError, "add_sheet: scale must be 0-22, per_request >= 0");
        return NULL;
    }
    Py_ssize_t n_tiers = PyTuple_GET_SIZE(tiers);
    if (t->n_sheets == t->cap_sheets) {
        Py_ssize_t cap = t->cap_sheets ? t->cap_sheets * 2 : 16;
        Sheet *grown = PyMem_Realloc(t->sheets, (size_t)cap * sizeof *grown);
        if (grown == NULL) return PyErr_NoMemory();
        t->sheets = grown;
        t->cap_sheets = cap;
    }
    int64_t *starts = int64_array(tiers, -1);
    if (starts == NULL) return NULL;
    int64_t *leaf = int64_array(rates, (n_tiers + 1) * N_TOKENS);
    if (leaf == NULL) {
        PyMem_Free(starts);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < (n_tiers + 1) * N_TOKENS; i++)
        if (leaf[i] < 0 || leaf[i] >= (1LL << 62)) {
            PyMem_Free(starts);
            PyMem_Free(leaf);
            PyErr_SetString(PyExc_ValueError, "add_sheet: a scaled rate outside [0, 2^62)");
            return NULL;
        }
    Sheet *s = &t->sheets[t->n_sheets];
    s->pricing_attr = Py_NewRef(attr);
    s->scale = POW10[scale];
    s->per_request = per_request;
    s->n_tiers = n_tiers;
    s->tier_starts = starts;
    s->rates = leaf;
    return PyLong_FromSsize_t(t->n_sheets++);
}

static PyObject *add_entry(CostTable *t, PyObject *args) {
    Py_buffer key;
    int kind;
    PyObject *starts_t, *sheets_t;
    if (!PyArg_ParseTuple(args, "y*iO!O!:add_entry", &key, &kind, &PyTuple_Type, &starts_t, &PyTuple_Type,
                          &sheets_t))
        return NULL;
    PyObject *result = NULL;
    int64_t *starts = NULL;
    int64_t *sheets64 = NULL;
    int *sheets = NULL;
    uint8_t *copy = NULL;
    Py_ssize_t n_starts = PyTuple_GET_SIZE(starts_t);
    if (kind < ENTRY_SKIP || kind > ENTRY_PRICED) {
        PyErr_SetString(PyExc_ValueError, "add_entry: unknown kind");
        goto done;
    }
    if (t->n_entries >= t->max_entries) {
        result = Py_NewRef(Py_False);  /* full: the caller clears and adds again */
        goto done;
    }
    uint64_t h = hash_text(HASH_SEED, (const uint8_t *)key.buf, (size_t)key.len);
    if (find_entry(t, key.buf, (size_t)key.len, h) != NULL) {
        PyErr_SetString(PyExc_ValueError, "add_entry: the key is in the table already");
        goto done;
    }
    if ((starts = int64_array(starts_t, -1)) == NULL) goto done;
    if ((sheets64 = int64_array(sheets_t, kind == ENTRY_PRICED ? n_starts + 1 : 0)) == NULL) goto done;
    sheets = PyMem_Malloc((size_t)(n_starts + 1) * sizeof *sheets);
    copy = PyMem_Malloc(key.len > 0 ? (size_t)key.len : 1);
    if (sheets == NULL || copy == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_starts; i++)
        if (starts[i] < 0 || (i > 0 && starts[i] <= starts[i - 1])) {
            PyErr_SetString(PyExc_ValueError, "add_entry: starts must be ascending and >= 0");
            goto done;
        }
    if (kind == ENTRY_PRICED)
        for (Py_ssize_t i = 0; i <= n_starts; i++) {
            if (sheets64[i] < -1 || sheets64[i] >= t->n_sheets) {
                PyErr_SetString(PyExc_ValueError, "add_entry: unknown sheet");
                goto done;
            }
            sheets[i] = (int)sheets64[i];
        }
    if (t->n_entries == t->cap_entries) {
        Py_ssize_t cap = t->cap_entries ? t->cap_entries * 2 : 16;
        Entry *grown = PyMem_Realloc(t->entries, (size_t)cap * sizeof *grown);
        if (grown == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        t->entries = grown;
        t->cap_entries = cap;
    }
    memcpy(copy, key.buf, (size_t)key.len);
    Entry *e = &t->entries[t->n_entries];
    e->key = copy;
    e->key_len = (size_t)key.len;
    e->hash = h;
    e->kind = kind;
    e->n_starts = n_starts;
    e->starts = starts;
    e->sheets = sheets;
    e->unpriced = 0;
    size_t i = h & (t->index_size - 1);
    while (t->index[i] >= 0) i = (i + 1) & (t->index_size - 1);
    t->index[i] = (int32_t)t->n_entries;
    result = PyLong_FromSsize_t(t->n_entries++);
    copy = NULL;
    starts = NULL;
    sheets = NULL;
done:
    PyBuffer_Release(&key);
    PyMem_Free(starts);
    PyMem_Free(sheets64);
    PyMem_Free(sheets);
    PyMem_Free(copy);
    return result;
}

static PyObject *table_clear(CostTable *t, PyObject *unused) {
    clear_entries(t);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ one call */

static int buffer_put(Buffer *b, const void *data, size_t len) {
    if (buffer_reserve(b, len) < 0) return -1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* Growth of messages in walk order: spans' appended bytes, scopes' and resources' total. */
typedef struct {
    size_t *span_len;       /* bytes appended to each span; their offsets are the running sum */
    size_t n_spans, cap_spans;
    size_t *scope_growth, *resource_growth;
    size_t n_scopes, cap_scopes, n_resources, cap_resources;
} Growth;

static int grow_sizes(size_t **a, size_t *cap, size_t need) {
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need) n *= 2;
    size_t *grown = PyMem_Realloc(*a, n * sizeof **a);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *a = grown;
    *cap = n;
    return 0;
}

static uint8_t *put_varint(uint8_t *w, uint64_t v) {
    while (v >= 0x80) {
        *w++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *w++ = (uint8_t)v;
    return w;
}

/* Where a length-delimited field's length varint starts (its tag was validated). */
static const uint8_t *after_tag(const uint8_t *tag) {
    while (*tag & 0x80) tag++;
    return tag + 1;
}

/* A string attribute's text, or no text (absent, empty or another kind of value:
 * processor.py's _string). */
static void text_of(const SpanFields *s, int slot, Slice *out) {
    out->data = NULL;
    out->len = 0;
    if (!s->found[slot]) return;
    Value v;
    if (parse_value(s->found_data[slot], s->found_len[slot], &v) < 0 || v.kind != V_STRING || v.len == 0) return;
    out->data = v.data;
    out->len = v.len;
}

static const int COMBO_TEXTS[6] = {S_OP, S_PROVIDER, S_REQ_MODEL, S_RESP_MODEL, S_TIER, S_REQUEST_TIER};

/* The entry key: tenant, span kind class, then each text present-flag + length + bytes.
 * 0, or 1 when too long (the Python path takes the request). */
static int combo_key(const Py_buffer *tenant, int is_client, const Slice *texts, uint8_t *out, size_t *len) {
    size_t n = 0, need = (size_t)tenant->len + 1;
    for (int i = 0; i < 6; i++) need += 5 + texts[i].len;
    if (need > MAX_COMBO) return 1;
    memcpy(out, tenant->buf, (size_t)tenant->len);
    n = (size_t)tenant->len;
    out[n++] = (uint8_t)is_client;
    for (int i = 0; i < 6; i++) {
        uint32_t l = (uint32_t)texts[i].len;
        out[n++] = texts[i].data != NULL;
        memcpy(out + n, &l, 4);
        n += 4;
        if (l) memcpy(out + n, texts[i].data, l);
        n += l;
    }
    *len = n;
    return 0;
}

static PyObject *slice_or_none(const Slice *s) {
    if (s->data == NULL) return Py_NewRef(Py_None);
    return PyBytes_FromStringAndSize((const char *)s->data, (Py_ssize_t)s->len);
}

typedef struct {
    CostTable *t;
    const Py_buffer *tenant;
    uint64_t fallback_ns;
    Buffer appended;
    PyObject *missing;   /* list of combos not in the table, NULL until one is found */
    PyObject *seen;      /* their keys, to report each once */
    int slow;
    size_t *touched;     /* entries whose unpriced count this call raised */
    size_t n_touched, cap_touched;
} Pass;

static int put_double(Buffer *b, PyObject *prefix, double d) {
    if (buffer_put(b, PyBytes_AS_STRING(prefix), (size_t)PyBytes_GET_SIZE(prefix)) < 0) return -1;
    uint8_t le[8];
    uint64_t bits;
    memcpy(&bits, &d, 8);
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)(bits >> (8 * i));
    return buffer_put(b, le, 8);
}

static int report_missing(Pass *p, const uint8_t *key, size_t key_len, int is_client, const Slice *texts) {
    PyObject *k = PyBytes_FromStringAndSize((const char *)key, (Py_ssize_t)key_len);
    if (k == NULL) return -1;
    if (p->missing == NULL) {
        p->missing = PyList_New(0);
        p->seen = PySet_New(NULL);
        if (p->missing == NULL || p->seen == NULL) {
            Py_DECREF(k);
            return -1;
        }
    }
    int known = PySet_Contains(p->seen, k);
    if (known != 0) {
        Py_DECREF(k);
        return known < 0 ? -1 : 0;
    }
    PyObject *row = PyTuple_New(8);
    if (row == NULL || PySet_Add(p->seen, k) < 0) {
        Py_XDECREF(row);
        Py_DECREF(k);
        return -1;
    }
    PyTuple_SET_ITEM(row, 0, k);
    PyTuple_SET_ITEM(row, 1, PyBool_FromLong(is_client));
    for (int i = 0; i < 6; i++) {
        PyObject *v = slice_or_none(&texts[i]);
        if (v == NULL) {
            Py_DECREF(row);
            return -1;
        }
        PyTuple_SET_ITEM(row, 2 + i, v);
    }
    int rc = PyList_Append(p->missing, row);
    Py_DECREF(row);
    return rc;
}

/* The bytes one span gets (none when it is not priced); 0, or -1 with an exception set.
 * Sets p->slow when the Python path must take the request. */
static int price_span(Pass *p, const uint8_t *msg, size_t len) {
    CostTable *t = p->t;
    SpanFields s;
    if (read_span(msg, len, &t->key_index, &s) < 0) return -1;
    if (!s.any) return 0;
    for (Py_ssize_t k = S_CURRENT; k < t->n_keys; k++)
        if (s.found[k]) goto slow;
    for (int k = S_FIRST_WRITTEN; k <= S_LAST_WRITTEN; k++)
        if (s.found[k]) goto slow;
    if (!s.found[S_IN] && !s.found[S_OUT]) return 0;
    uint64_t tokens[N_TOKENS];
    for (int k = 0; k < N_TOKENS; k++) {
        tokens[k] = 0;
        if (!s.found[S_IN + k]) continue;
        Value v;
        if (parse_value(s.found_data[S_IN + k], s.found_len[S_IN + k], &v) < 0 || v.kind != V_INT ||
            v.scalar >= MAX_TOKENS)
            goto slow; /* negative counts are huge as unsigned */
        tokens[k] = v.scalar;
    }
    Slice texts[6];
    for (int i = 0; i < 6; i++) text_of(&s, COMBO_TEXTS[i], &texts[i]);
    int is_client = s.kind == SPAN_KIND_CLIENT;
    uint8_t key[MAX_COMBO];
    size_t key_len;
    if (combo_key(p->tenant, is_client, texts, key, &key_len)) goto slow;
    Entry *e = find_entry(t, key, key_len, hash_text(HASH_SEED, key, key_len));
    if (e == NULL) return report_missing(p, key, key_len, is_client, texts);
    if (p->missing != NULL || e->kind == ENTRY_SKIP) return 0;
    if (e->kind == ENTRY_SLOW) goto slow;
    uint64_t at = s.start ? s.start : p->fallback_ns;
    Py_ssize_t lo = 0, hi = e->n_starts; /* the number of starts <= at */
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if ((uint64_t)e->starts[mid] <= at) lo = mid + 1;
        else hi = mid;
    }
    int si = e->sheets[lo];
    if (si < 0) {
        if (e->unpriced++ == 0) {
            if (grow_sizes(&p->touched, &p->cap_touched, p->n_touched + 1) < 0) return -1;
            p->touched[p->n_touched++] = (size_t)(e - t->entries);
        }
        return buffer_put(&p->appended, PyBytes_AS_STRING(t->unpriced_attr),
                          (size_t)PyBytes_GET_SIZE(t->unpriced_attr));
    }
    const Sheet *sh = &t->sheets[si];
    int64_t in = (int64_t)tokens[0], out = (int64_t)tokens[1], cr = (int64_t)tokens[2], cw = (int64_t)tokens[3];
    int64_t reasoning = (int64_t)tokens[4], ain = (int64_t)tokens[5], aout = (int64_t)tokens[6];
    int64_t cached_audio = (int64_t)tokens[7];
    int64_t cache_text = cr - cached_audio, audio_in = ain - cached_audio;
    int64_t text_in = in - cr - cw - audio_in, text_out = out - reasoning - aout;
    if (cache_text < 0 || audio_in < 0 || text_in < 0 || text_out < 0) goto slow;
    Py_ssize_t tier = 0;
    while (tier < sh->n_tiers && in > sh->tier_starts[tier]) tier++;
    const int64_t *r = sh->rates + tier * N_TOKENS;
    __int128 input = (__int128)r[0] * text_in + (__int128)r[1] * audio_in;
    __int128 cache_read = (__int128)r[2] * cache_text + (__int128)r[3] * cached_audio;
    __int128 cache_write = (__int128)r[4] * cw;
    __int128 output = (__int128)r[5] * text_out + (__int128)r[6] * reasoning + (__int128)r[7] * aout;
    __int128 total = input + output + cache_read + cache_write + sh->per_request;
    if (total >= MAX_COST) goto slow; /* every part is <= total */
    Buffer *b = &p->appended;
    if (put_double(b, t->prefixes[0], (double)(int64_t)total / sh->scale) < 0 ||
        put_double(b, t->prefixes[1], (double)(int64_t)input / sh->scale) < 0 ||
        put_double(b, t->prefixes[2], (double)(int64_t)output / sh->scale) < 0 ||
        (cache_read != 0 && put_double(b, t->prefixes[3], (double)(int64_t)cache_read / sh->scale) < 0) ||
        (cache_write != 0 && put_double(b, t->prefixes[4], (double)(int64_t)cache_write / sh->scale) < 0) ||
        buffer_put(b, PyBytes_AS_STRING(sh->pricing_attr), (size_t)PyBytes_GET_SIZE(sh->pricing_attr)) < 0)
        return -1;
    return 0;
slow:
    p->slow = 1;
    return 0;
}

#define MALFORMED(what)                                                                                            \
    do {                                                                                                           \
        PyErr_SetString(PyExc_ValueError, "malformed " what);                                                      \
        goto fail;                                                                                                 \
    } while (0)

/* Pass 1: what each span gets and how much each message grows (new lengths are written
 * as minimal varints; a client's may not have been). Returns the request's growth, or
 * -1 with an exception set. */
static long long plan(Pass *p, const uint8_t *buf, size_t len, Growth *g) {
    size_t growth = 0;
    Reader r = reader(buf, len);
    Field f;
    int rc;
    const uint8_t *tag = r.p;
    while ((rc = next_field(&r, &f)) > 0) {
        const uint8_t *f_tag = tag;
        tag = r.p;
        if (f.number != 1) continue;
        if (f.wire_type != 2) MALFORMED("ExportTraceServiceRequest");
        size_t r_growth = 0;
        Reader rr = reader(f.data, f.len);
        Field rf;
        int rrc;
        const uint8_t *rtag = rr.p;
        while ((rrc = next_field(&rr, &rf)) > 0) {
            const uint8_t *rf_tag = rtag;
            rtag = rr.p;
            if (rf.number != 2) continue;
            if (rf.wire_type != 2) MALFORMED("ResourceSpans");
            size_t s_growth = 0;
            Reader sr = reader(rf.data, rf.len);
            Field sf;
            int src;
            const uint8_t *stag = sr.p;
            while ((src = next_field(&sr, &sf)) > 0) {
                const uint8_t *sf_tag = stag;
                stag = sr.p;
                if (sf.number != 2) continue;
                if (sf.wire_type != 2) MALFORMED("ScopeSpans");
                /* as in _spanwalk.h's walk: ask for the span's lines before reading it */
                size_t ahead = sf.len < 16384 ? sf.len : 16384;
                for (size_t off = 0; off < ahead; off += 64) __builtin_prefetch(sf.data + off);
                size_t before = p->appended.len;
                if (price_span(p, sf.data, sf.len) < 0) goto fail;
                if (p->slow) return 0;
                if (grow_sizes(&g->span_len, &g->cap_spans, g->n_spans + 1) < 0) goto fail;
                size_t added = p->appended.len - before;
                g->span_len[g->n_spans++] = added;
                if (added)
                    s_growth += added + varint_size(sf.len + added) - (size_t)(sf.data - after_tag(sf_tag));
            }
            if (src < 0) MALFORMED("ScopeSpans");
            if (grow_sizes(&g->scope_growth, &g->cap_scopes, g->n_scopes + 1) < 0) goto fail;
            g->scope_growth[g->n_scopes++] = s_growth;
            if (s_growth)
                r_growth += s_growth + varint_size(rf.len + s_growth) - (size_t)(rf.data - after_tag(rf_tag));
        }
        if (rrc < 0) MALFORMED("ResourceSpans");
        if (grow_sizes(&g->resource_growth, &g->cap_resources, g->n_resources + 1) < 0) goto fail;
        g->resource_growth[g->n_resources++] = r_growth;
        if (r_growth) growth += r_growth + varint_size(f.len + r_growth) - (size_t)(f.data - after_tag(f_tag));
    }
    if (rc < 0) MALFORMED("ExportTraceServiceRequest");
    return (long long)growth;
fail:
    return -1;
}

/* Copies [*copied, upto) to w; the new position in w. */
static uint8_t *copy_to(uint8_t *w, const uint8_t **copied, const uint8_t *upto) {
    size_t n = (size_t)(upto - *copied);
    memcpy(w, *copied, n);
    *copied = upto;
    return w + n;
}

/* Spans in a ScopeSpans' bytes, for skipping an unchanged one. */
static size_t count_spans(const uint8_t *scope, size_t len) {
    size_t n = 0;
    Reader r = reader(scope, len);
    Field f;
    while (next_field(&r, &f) > 0) n += f.number == 2;
    return n;
}

/* Pass 2: the request with the planned bytes appended and the lengths rewritten. Only
 * bytes pass 1 read whole reach here. */
static void rebuild(const Pass *p, const uint8_t *buf, size_t len, const Growth *g, uint8_t *w) {
    size_t ri = 0, si = 0, spi = 0;
    const uint8_t *copied = buf, *appended = p->appended.data;
    Reader r = reader(buf, len);
    Field f;
    const uint8_t *tag = r.p;
    while (next_field(&r, &f) > 0) {
        const uint8_t *f_tag = tag;
        tag = r.p;
        if (f.number != 1) continue;
        size_t rg = g->resource_growth[ri++];
        Reader rr = reader(f.data, f.len);
        Field rf;
        const uint8_t *rtag = rr.p;
        if (rg) {
            w = copy_to(w, &copied, after_tag(f_tag));
            w = put_varint(w, f.len + rg);
            copied = f.data;
        }
        while (next_field(&rr, &rf) > 0) {
            const uint8_t *rf_tag = rtag;
            rtag = rr.p;
            if (rf.number != 2) continue;
            size_t sg = g->scope_growth[si++];
            if (!sg) {
                spi += count_spans(rf.data, rf.len);
                continue;
            }
            w = copy_to(w, &copied, after_tag(rf_tag));
            w = put_varint(w, rf.len + sg);
            copied = rf.data;
            Reader sr = reader(rf.data, rf.len);
            Field sf;
            const uint8_t *stag = sr.p;
            while (next_field(&sr, &sf) > 0) {
                const uint8_t *sf_tag = stag;
                stag = sr.p;
                if (sf.number != 2) continue;
                size_t k = spi++, added = g->span_len[k];
                if (!added) continue;
                w = copy_to(w, &copied, after_tag(sf_tag));
                w = put_varint(w, sf.len + added);
                copied = sf.data;
                w = copy_to(w, &copied, sf.data + sf.len);
                memcpy(w, appended, added);
                appended += added;
                w += added;
            }
        }
    }
    copy_to(w, &copied, buf + len);
}

static void free_growth(Growth *g) {
    PyMem_Free(g->span_len);
    PyMem_Free(g->scope_growth);
    PyMem_Free(g->resource_growth);
}

PyDoc_STRVAR(price_doc,
             "price(request, tenant, fallback_ns) -> (status, payload)\n\n"
             "status 0 (done): payload is (new request bytes or None when no span changed,\n"
             "[(entry id, spans found unpriced)]). 1 (slow): a span needs the Python path.\n"
             "2 (missing): payload lists the (key, is_client, operation, provider, request\n"
             "model, response model, service tier, request service tier) combinations to add.");

static PyObject *table_price(CostTable *t, PyObject *args) {
    Py_buffer request, tenant;
    unsigned long long fallback_ns;
    if (!PyArg_ParseTuple(args, "y*y*K:price", &request, &tenant, &fallback_ns)) return NULL;
    PyObject *result = NULL;
    Growth g = {0};
    Pass p = {.t = t, .tenant = &tenant, .fallback_ns = fallback_ns};
    long long growth = plan(&p, request.buf, (size_t)request.len, &g);
    if (growth < 0) goto done;
    if (p.slow) {
        result = Py_BuildValue("(iO)", STATUS_SLOW, Py_None);
        goto done;
    }
    if (p.missing != NULL) {
        result = Py_BuildValue("(iO)", STATUS_MISSING, p.missing);
        goto done;
    }
    PyObject *counts = PyList_New(0);
    if (counts == NULL) goto done;
    for (size_t i = 0; i < p.n_touched; i++) {
        size_t k = p.touched[i];
        PyObject *row = Py_BuildValue("(nK)", (Py_ssize_t)k, (unsigned long long)t->entries[k].unpriced);
        if (row == NULL || PyList_Append(counts, row) < 0) {
            Py_XDECREF(row);
            Py_DECREF(counts);
            goto done;
        }
        Py_DECREF(row);
    }
    PyObject *wire = Py_NewRef(Py_None);
    if (p.appended.len) { /* priced and unpriced spans both get bytes */
        Py_DECREF(wire);
        wire = PyBytes_FromStringAndSize(NULL, request.len + (Py_ssize_t)growth);
        if (wire == NULL) {
            Py_DECREF(counts);
            goto done;
        }
        rebuild(&p, request.buf, (size_t)request.len, &g, (uint8_t *)PyBytes_AS_STRING(wire));
    }
    result = Py_BuildValue("(i(NN))", STATUS_DONE, wire, counts);
done:
    for (size_t i = 0; i < p.n_touched; i++) t->entries[p.touched[i]].unpriced = 0;
    PyMem_Free(p.touched);
    Py_XDECREF(p.missing);
    Py_XDECREF(p.seen);
    PyMem_Free(p.appended.data);
    free_growth(&g);
    PyBuffer_Release(&request);
    PyBuffer_Release(&tenant);
    return result;
}

static PyMethodDef table_methods[] = {
    {"add_sheet", (PyCFunction)add_sheet, METH_VARARGS,
     "add_sheet(pricing_attribute, scale, per_request, tier_starts, rates) -> sheet id"},
    {"add_entry", (PyCFunction)add_entry, METH_VARARGS,
     "add_entry(key, kind, starts, sheets) -> entry id, or False when the table is full"},
    {"price", (PyCFunction)table_price, METH_VARARGS, price_doc},
    {"clear", (PyCFunction)table_clear, METH_NOARGS, "clear() drops every entry and sheet"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CostTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "processors.genai_cost._fastcost.CostTable",
    .tp_basicsize = sizeof(CostTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)table_init,
    .tp_dealloc = (destructor)table_dealloc,
    .tp_methods = table_methods,
    .tp_doc = "CostTable(scan_keys, double_prefixes, unpriced_attribute, max_entries)",
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fastcost", "genai_cost's fast path over a request's bytes.", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastcost(void) {
    if (PyType_Ready(&CostTableType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "CostTable", (PyObject *)&CostTableType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
