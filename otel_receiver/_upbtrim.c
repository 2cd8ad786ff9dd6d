/*
 * Paces protobuf's malloc_trim.
 *
 * Why: protobuf's upb runtime for Python (google/_upb/_message; protobuf 7.36 here, the
 * newest) frees its arenas through an allocator that calls glibc's malloc_trim(0) every
 * 10,000 frees, to keep RSS down. malloc_trim(0) hands every free page of the heap back
 * to the kernel (madvise MADV_DONTNEED), so the next requests fault each page in again
 * and the kernel zeroes it. A receiver parses and frees messages all the time: measured
 * on the benchmark's 100-span requests over OTLP/HTTP, 20-60 page faults and 55-200 us
 * of kernel time per request (raw receive to the full pipeline), up to a quarter of the
 * raw receive cost. No protobuf setting turns it off.
 *
 * pace(seconds) points the call sites in upb's module at paced_malloc_trim, which
 * passes at most one call per `seconds` on to glibc (so freed memory still goes back
 * while traffic flows) and drops the others. The call sites are the module's GOT entries for malloc_trim,
 * found through its dynamic relocations: the dynamic linker gives no other way to
 * interpose one symbol for one library after it is loaded, and LD_PRELOAD would need the
 * process restarted. Anything unexpected (no upb module, no such relocation, REL-style
 * relocations) leaves everything as it was and reports 0 sites.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <elf.h>
#include <link.h>
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if __SIZEOF_POINTER__ == 8
#define RELOCATION_SYMBOL ELF64_R_SYM
#else
#define RELOCATION_SYMBOL ELF32_R_SYM
#endif

static int64_t interval_ns;
static int64_t last_pass_ns = INT64_MIN;
static uint64_t calls, passed;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* upb calls this from any thread: the counters are statistics, relaxed atomics suffice. */
static int paced_malloc_trim(size_t pad) {
    __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED);
    int64_t now = now_ns();
    int64_t last = __atomic_load_n(&last_pass_ns, __ATOMIC_RELAXED);
    if (last != INT64_MIN && now - last < __atomic_load_n(&interval_ns, __ATOMIC_RELAXED)) return 0;
    __atomic_store_n(&last_pass_ns, now, __ATOMIC_RELAXED);
    __atomic_add_fetch(&passed, 1, __ATOMIC_RELAXED);
    return malloc_trim(pad);
}

typedef struct {
    const char *library; /* a substring of the library's path */
    int sites;
    int failed;
} Search;

/* A dynamic-section address: glibc relocates most entries in place, some loaders do not. */
static uintptr_t dyn_address(const struct dl_phdr_info *info, ElfW(Addr) value) {
    return value < info->dlpi_addr ? info->dlpi_addr + value : value;
}

static int in_relro(const struct dl_phdr_info *info, uintptr_t address) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_GNU_RELRO) continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (address >= start && address < start + ph->p_memsz) return 1;
    }
    return 0;
}

/* Points one GOT slot at paced_malloc_trim; 0, or -1 (errno set) when its page cannot
 * be made writable. The page is made writable whatever it was (a no-op for a writable
 * .got.plt), and read-only again when it is in the RELRO segment. */
static int redirect(const struct dl_phdr_info *info, void **slot) {
    void *target = (void *)paced_malloc_trim;
    if (*slot == target) return 0;
    uintptr_t page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    void *page = (void *)((uintptr_t)slot & ~(page_size - 1));
    /* A slot spanning two pages cannot happen: slots are pointer-aligned. */
    if (mprotect(page, page_size, PROT_READ | PROT_WRITE) != 0) return -1;
    __atomic_store_n(slot, target, __ATOMIC_RELEASE);
    if (in_relro(info, (uintptr_t)slot)) mprotect(page, page_size, PROT_READ);
    return 0;
}

static void redirect_table(const struct dl_phdr_info *info, Search *search, const ElfW(Rela) *table, size_t size,
                           const ElfW(Sym) *symbols, const char *names) {
    for (size_t i = 0; i < size / sizeof *table; i++) {
        size_t symbol = RELOCATION_SYMBOL(table[i].r_info);
        if (symbol == 0 || strcmp(names + symbols[symbol].st_name, "malloc_trim") != 0) continue;
        if (redirect(info, (void **)(info->dlpi_addr + table[i].r_offset)) < 0) {
            search->failed = 1;
            continue;
        }
        search->sites++;
    }
}

static int visit(struct dl_phdr_info *info, size_t size, void *data) {
    Search *search = data;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, search->library) == NULL) return 0;
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (dyn == NULL) return 0;
    const ElfW(Sym) *symbols = NULL;
    const char *names = NULL;
    const ElfW(Rela) *plt = NULL, *rela = NULL;
    size_t plt_size = 0, rela_size = 0;
    int plt_is_rela = 0;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_SYMTAB: symbols = (const ElfW(Sym) *)dyn_address(info, dyn->d_un.d_ptr); break;
        case DT_STRTAB: names = (const char *)dyn_address(info, dyn->d_un.d_ptr); break;
        case DT_JMPREL: plt = (const ElfW(Rela) *)dyn_address(info, dyn->d_un.d_ptr); break;
        case DT_PLTRELSZ: plt_size = dyn->d_un.d_val; break;
        case DT_PLTREL: plt_is_rela = dyn->d_un.d_val == DT_RELA; break;
        case DT_RELA: rela = (const ElfW(Rela) *)dyn_address(info, dyn->d_un.d_ptr); break;
        case DT_RELASZ: rela_size = dyn->d_un.d_val; break;
        default: break;
        }
    }
    if (symbols == NULL || names == NULL) return 0;
    /* Calls through the PLT (JUMP_SLOT), and through the GOT when built with -fno-plt
     * (GLOB_DAT, in DT_RELA). */
    if (plt != NULL && plt_is_rela) redirect_table(info, search, plt, plt_size, symbols, names);
    if (rela != NULL) redirect_table(info, search, rela, rela_size, symbols, names);
    return 0;
}

static PyObject *pace(PyObject *self, PyObject *args) {
    double seconds;
    const char *library = "/_upb/_message";
    if (!PyArg_ParseTuple(args, "d|s:pace", &seconds, &library)) return NULL;
    if (!(seconds >= 0.0) || seconds > 1e9) {
        PyErr_SetString(PyExc_ValueError, "pace: seconds must be within 0..1e9");
        return NULL;
    }
    __atomic_store_n(&interval_ns, (int64_t)(seconds * 1e9), __ATOMIC_RELAXED);
    Search search = {library, 0, 0};
    dl_iterate_phdr(visit, &search);
    if (search.failed) return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(search.sites);
}

static PyObject *counts(PyObject *self, PyObject *unused) {
    return Py_BuildValue("KK", (unsigned long long)__atomic_load_n(&calls, __ATOMIC_RELAXED),
                         (unsigned long long)__atomic_load_n(&passed, __ATOMIC_RELAXED));
}

static PyMethodDef methods[] = {
    {"pace", pace, METH_VARARGS,
     "pace(seconds, library='/_upb/_message') -> sites: pass the library's malloc_trim calls on to "
     "glibc at most once per `seconds`; the number of call sites redirected (0: none found)."},
    {"counts", counts, METH_NOARGS, "counts() -> (calls, passed): malloc_trim calls seen and passed on."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_upbtrim", "Paces protobuf upb's malloc_trim calls.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__upbtrim(void) { return PyModule_Create(&module); }
