/*
 * The last step of redacting a flagged string when every detector's action is `mask`:
 * overlapping hits resolved, the JSON-string check, the masked bytes and the counts by
 * type, in one call. Included by _prefilter.c.
 *
 * Why in C: in Python this step (a Hit object per hit, engine._resolve, the action of each
 * hit asked twice, the join of the pieces, the tally) cost ~20 us of the ~37 us that a
 * flagged prompt with PII took on the event loop's thread, about a third of the
 * processor's time there at 10% PII. Semantics are engine.Redactor's (_resolve, _choose,
 * _inside_json_strings, redact_bytes), which stays the path for the other actions, for
 * NER and without the C pass; tests/test_pii_prefilter.py compares the two.
 */

typedef struct {
    size_t start, end;
    uint32_t det;
    int32_t priority; /* the detector's */
    uint32_t seq;     /* the order the caller gave, then the order kept: ties keep it */
} MaskHit;

typedef struct {
    PyObject_HEAD
    Py_ssize_t n_detectors;
    Py_ssize_t n_types;
    int32_t *priority; /* by detector index */
    uint32_t *type;    /* by detector index, < n_types */
    PyObject **token;  /* bytes, by detector index */
} Masker;

/* Whether every hits[i] (sorted by start) lies inside one string literal of the JSON
 * text b[0..n), away from escapes: it holds no quote or backslash, the byte before it is no
 * backslash, and an odd number of quotes precedes it. 0 whenever b holds an escaped quote
 * (parity is then not exact). */
static int spans_inside_json(const uint8_t *b, size_t n, const MaskHit *hits, size_t count) {
    const uint8_t *q = n ? memchr(b, '\\', n) : NULL;
    while (q != NULL) {
        size_t next = (size_t)(q + 1 - b);
        if (next < n && b[next] == '"') return 0;
        q = next < n ? memchr(b + next, '\\', n - next) : NULL;
    }
    size_t quotes = 0, counted = 0;
    for (size_t k = 0; k < count; k++) {
        size_t s = hits[k].start, e = hits[k].end;
        for (size_t i = counted; i < s; i++) quotes += b[i] == '"';
        counted = s;
        if (memchr(b + s, '"', e - s) != NULL || memchr(b + s, '\\', e - s) != NULL || (s > 0 && b[s - 1] == '\\') ||
            quotes % 2 == 0)
            return 0;
    }
    return 1;
}

/* Sorted by start, then end, then the caller's order (engine._resolve's stable sort). */
static int by_start_end(const void *a, const void *b) {
    const MaskHit *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* engine._choose's order: higher priority, then longer, then start, then the order before. */
static int by_preference(const void *a, const void *b) {
    const MaskHit *x = a, *y = b;
    if (x->priority != y->priority) return x->priority > y->priority ? -1 : 1;
    size_t lx = x->end - x->start, ly = y->end - y->start;
    if (lx != ly) return lx > ly ? -1 : 1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int by_start_then_seq(const void *a, const void *b) {
    const MaskHit *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* engine._choose on cluster[0..n), by_start order: the greedy pick of non-overlapping hits
 * by preference, appended to kept[*n_kept..]. `scratch` holds n hits. */
static void choose(const MaskHit *cluster, size_t n, MaskHit *scratch, MaskHit *kept, size_t *n_kept) {
    if (n == 1) {
        kept[(*n_kept)++] = cluster[0];
        return;
    }
    memcpy(scratch, cluster, n * sizeof *scratch);
    for (size_t i = 0; i < n; i++) scratch[i].seq = (uint32_t)i; /* its place in by_start order */
    qsort(scratch, n, sizeof *scratch, by_preference);
    size_t first = *n_kept;
    for (size_t i = 0; i < n; i++) {
        const MaskHit *h = &scratch[i];
        int free_of_overlap = 1;
        for (size_t k = first; k < *n_kept && free_of_overlap; k++)
            free_of_overlap = h->end <= kept[k].start || h->start >= kept[k].end;
        if (free_of_overlap) kept[(*n_kept)++] = *h;
    }
}

/* engine._resolve: hits[0..n) become the kept hits, sorted by start; returns their count,
 * or -1 without memory. */
static Py_ssize_t resolve_hits(MaskHit *hits, size_t n) {
    qsort(hits, n, sizeof *hits, by_start_end);
    size_t previous_end = 0;
    int overlap = 0;
    for (size_t i = 0; i < n && !overlap; i++) {
        overlap = i > 0 && hits[i].start < previous_end;
        previous_end = hits[i].end;
    }
    if (!overlap) return (Py_ssize_t)n;
    MaskHit *kept = PyMem_Malloc(2 * n * sizeof *kept);
    if (kept == NULL) return -1;
    MaskHit *scratch = kept + n;
    size_t n_kept = 0, first = 0, cluster_end = hits[0].end;
    for (size_t i = 1; i < n; i++) {
        if (hits[i].start >= cluster_end) {
            choose(hits + first, i - first, scratch, kept, &n_kept);
            first = i;
            cluster_end = hits[i].end;
        } else if (hits[i].end > cluster_end) {
            cluster_end = hits[i].end;
        }
    }
    choose(hits + first, n - first, scratch, kept, &n_kept);
    for (size_t i = 0; i < n_kept; i++) kept[i].seq = (uint32_t)i;
    qsort(kept, n_kept, sizeof *kept, by_start_then_seq);
    memcpy(hits, kept, n_kept * sizeof *hits);
    PyMem_Free(kept);
    return (Py_ssize_t)n_kept;
}

static void masker_dealloc(Masker *m) {
    for (Py_ssize_t i = 0; m->token != NULL && i < m->n_detectors; i++) Py_XDECREF(m->token[i]);
    PyMem_Free(m->token);
    PyMem_Free(m->priority);
    PyMem_Free(m->type);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

static PyObject *masker_new(PyTypeObject *cls, PyObject *args, PyObject *kwds) {
    PyObject *priorities, *tokens, *types;
    if (!PyArg_ParseTuple(args, "O!O!O!:Masker", &PyList_Type, &priorities, &PyList_Type, &tokens, &PyList_Type,
                          &types))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(priorities);
    if (PyList_GET_SIZE(tokens) != n || PyList_GET_SIZE(types) != n || n >= UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "priorities, tokens and types need one entry per detector");
        return NULL;
    }
    Masker *m = (Masker *)cls->tp_alloc(cls, 0);
    if (m == NULL) return NULL;
    m->priority = PyMem_Calloc((size_t)n + 1, sizeof *m->priority);
    m->type = PyMem_Calloc((size_t)n + 1, sizeof *m->type);
    m->token = PyMem_Calloc((size_t)n + 1, sizeof *m->token);
    if (m->priority == NULL || m->type == NULL || m->token == NULL) {
        Py_DECREF(m);
        return PyErr_NoMemory();
    }
    m->n_detectors = n;
    for (Py_ssize_t i = 0; i < n; i++) {
        long priority = PyLong_AsLong(PyList_GET_ITEM(priorities, i));
        Py_ssize_t type = PyLong_AsSsize_t(PyList_GET_ITEM(types, i));
        PyObject *token = PyList_GET_ITEM(tokens, i);
        if (PyErr_Occurred()) {
            Py_DECREF(m);
            return NULL;
        }
        if (priority < INT32_MIN || priority > INT32_MAX || type < 0 || type >= n || !PyBytes_Check(token)) {
            Py_DECREF(m);
            PyErr_SetString(PyExc_ValueError, "a priority fits 32 bits, a type is 0 <= t < len(types), a token is bytes");
            return NULL;
        }
        m->priority[i] = (int32_t)priority;
        m->type[i] = (uint32_t)type;
        if (type >= m->n_types) m->n_types = type + 1;
        Py_INCREF(token);
        m->token[i] = token;
    }
    return (PyObject *)m;
}

PyDoc_STRVAR(masker_mask_doc,
             "mask(buf, hits, json) -> (bytes, ((type, count), ...)) | None\n\n"
             "`hits`: (detector, start, end) byte offsets into `buf`, in the order found. Overlaps\n"
             "are resolved as engine._resolve does; each kept hit is replaced by its detector's\n"
             "token; the counts are by type, in the order first met. None when `json` is true\n"
             "and a kept hit is not inside one JSON string literal (spans_inside_json): the\n"
             "caller then parses the document.");

static PyObject *masker_mask(Masker *m, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "mask(buf: bytes, hits: list, json: bool)");
        return NULL;
    }
    int json = PyObject_IsTrue(args[2]);
    if (json < 0) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *b = view.buf;
    size_t len = (size_t)view.len;
    PyObject *list = args[1], *result = NULL, *out = NULL, *counts = NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    MaskHit *hits = PyMem_Malloc(((size_t)n + 1) * sizeof *hits);
    size_t *count = PyMem_Calloc((size_t)m->n_types + 1, sizeof *count);
    uint32_t *met = PyMem_Malloc(((size_t)m->n_types + 1) * sizeof *met);
    if (hits == NULL || count == NULL || met == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        Py_ssize_t det, start, end;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
            PyErr_SetString(PyExc_TypeError, "a hit is a (detector, start, end) tuple");
            goto done;
        }
        det = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
        start = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 1));
        end = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 2));
        if (PyErr_Occurred()) goto done;
        if (det < 0 || det >= m->n_detectors || start < 0 || end < start || (size_t)end > len) {
            PyErr_SetString(PyExc_ValueError, "a hit needs 0 <= detector < detectors, 0 <= start <= end <= len(buf)");
            goto done;
        }
        hits[i] = (MaskHit){(size_t)start, (size_t)end, (uint32_t)det, m->priority[det], (uint32_t)i};
    }
    Py_ssize_t kept = n ? resolve_hits(hits, (size_t)n) : 0;
    if (kept < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (json && !spans_inside_json(b, len, hits, (size_t)kept)) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    /* redact_bytes: the bytes between hits, each hit's token; `last` follows the hit's end
     * even where a zero-length hit would move it back (as Python's slices do). */
    size_t size = 0, last = 0;
    for (Py_ssize_t i = 0; i < kept; i++) {
        if (hits[i].start > last) size += hits[i].start - last;
        size += (size_t)PyBytes_GET_SIZE(m->token[hits[i].det]);
        last = hits[i].end;
    }
    if (len > last) size += len - last;
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (out == NULL) goto done;
    char *w = PyBytes_AS_STRING(out);
    Py_ssize_t n_met = 0;
    last = 0;
    for (Py_ssize_t i = 0; i < kept; i++) {
        const MaskHit *h = &hits[i];
        if (h->start > last) {
            memcpy(w, b + last, h->start - last);
            w += h->start - last;
        }
        PyObject *token = m->token[h->det];
        memcpy(w, PyBytes_AS_STRING(token), (size_t)PyBytes_GET_SIZE(token));
        w += PyBytes_GET_SIZE(token);
        last = h->end;
        uint32_t t = m->type[h->det];
        if (count[t]++ == 0) met[n_met++] = t;
    }
    if (len > last) memcpy(w, b + last, len - last);
    counts = PyTuple_New(n_met);
    if (counts == NULL) goto done;
    for (Py_ssize_t i = 0; i < n_met; i++) {
        PyObject *pair = Py_BuildValue("(In)", met[i], (Py_ssize_t)count[met[i]]);
        if (pair == NULL) goto done;
        PyTuple_SET_ITEM(counts, i, pair);
    }
    result = PyTuple_Pack(2, out, counts);
done:
    Py_XDECREF(out);
    Py_XDECREF(counts);
    PyMem_Free(hits);
    PyMem_Free(count);
    PyMem_Free(met);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef masker_methods[] = {
    {"mask", (PyCFunction)(void (*)(void))masker_mask, METH_FASTCALL, masker_mask_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MaskerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "processors.pii_redaction._prefilter.Masker",
    .tp_basicsize = sizeof(Masker),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Masker(priorities, tokens, types): the mask step of engine.Redactor for detectors\n"
              "0..n-1, each with its priority, its mask token (bytes) and its type's number.",
    .tp_new = masker_new,
    .tp_dealloc = (destructor)masker_dealloc,
    .tp_methods = masker_methods,
};
