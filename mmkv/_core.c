/* mmkv._core: the compiled hot paths. mmkv/view.py, mmkv/txn.py and mmkv/writer.py are the
 * reference: every function here computes exactly what its Python counterpart computes, for
 * the cases it handles, and hands every other case back to it (by returning None), so that
 * errors and their messages come from one place. tests/core/ holds the two to identical
 * answers and identical files.
 *
 * Safety: every offset and length read from the file is checked against the mapping's length
 * before anything is read there, whatever the bytes say. The mapping is held (a buffer export)
 * for the Map's lifetime, so it cannot be unmapped under it.
 *
 * Memory ordering (the argument is in docs/explanation/concurrency.rst): slot words and header
 * words are loaded with acquire loads here, and stored with release stores by Map.store /
 * Map.store_many, which mmkv.effects uses for every publishing store when this module is
 * present. Record and meta bytes are plain memory; they are ordered by those stores. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <time.h>

#include "_crc.h"

#define RECORD_SIZE 48
#define HEADER_SIZE 4096
#define SLOT_OFFSET_BITS 40
#define SLOT_OFFSET_MASK ((UINT64_C(1) << SLOT_OFFSET_BITS) - 1)
#define TAG_LOW 0x7FFFFFu
#define TAG_BIT 0x800000u
#define K_PUT 1
#define K_DELETE 2
#define K_EVICT 3
#define K_TABLE 4
#define K_EXPIRE 5
#define K_COMMIT 6

/* Field offsets of the 48-byte record header (mmkv.format.RECORD). */
#define F_CRC 0
#define F_KIND 4
#define F_KTYPE 5
#define F_VTYPE 6
#define F_GEN 8
#define F_PREV 16
#define F_HASH 24
#define F_KLEN 28
#define F_VLEN 32
#define F_EXP 40

typedef struct {
    PyObject_HEAD
    Py_buffer view;
    int have_view;
    int writable;
    unsigned char *buf; /* NULL once released */
    uint64_t size;
} Map;

static inline uint64_t align8(uint64_t n) { return (n + 7) & ~UINT64_C(7); }
static inline uint64_t home(uint32_t h, unsigned shift) {
    return ((uint32_t)(h * 0x9E3779B1u)) >> shift;
}

static int map_init(Map *self, PyObject *args, PyObject *kw) {
    PyObject *mm;
    static char *kwlist[] = {"mm", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O", kwlist, &mm)) return -1;
    if (self->have_view) {
        PyBuffer_Release(&self->view);
        self->have_view = 0;
        self->buf = NULL;
    }
    /* ACCESS_READ maps refuse a writable export: retry read-only, and refuse stores then. */
    if (PyObject_GetBuffer(mm, &self->view, PyBUF_WRITABLE) == 0) {
        self->writable = 1;
    } else {
        PyErr_Clear();
        if (PyObject_GetBuffer(mm, &self->view, PyBUF_SIMPLE) != 0) return -1;
        self->writable = 0;
    }
    self->have_view = 1;
    if ((uintptr_t)self->view.buf & 7) {
        PyBuffer_Release(&self->view);
        self->have_view = 0;
        PyErr_SetString(PyExc_ValueError, "the mapping is not 8-byte aligned");
        return -1;
    }
    self->buf = self->view.buf;
    self->size = (uint64_t)self->view.len & ~UINT64_C(7);
    return 0;
}

static void map_dealloc(Map *self) {
    if (self->have_view) PyBuffer_Release(&self->view);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check_alive(Map *self) {
    if (!self->buf) {
        PyErr_SetString(PyExc_ValueError, "the map was released");
        return -1;
    }
    return 0;
}

static int arg_u64(PyObject *o, uint64_t *out) {
    uint64_t v = PyLong_AsUnsignedLongLong(o);
    if (v == (uint64_t)-1 && PyErr_Occurred()) return -1;
    *out = v;
    return 0;
}

/* The table geometry (base, mask, shift) a view passes in, checked against the mapping. */
static int geometry(Map *self, PyObject *const *args, uint64_t *base, uint64_t *mask,
                    unsigned *shift) {
    uint64_t s;
    if (arg_u64(args[0], base) || arg_u64(args[1], mask) || arg_u64(args[2], &s)) return -1;
    uint64_t slots = *mask + 1;
    if (slots < 2 || (slots & *mask) || s < 1 || s > 31 || (UINT64_C(1) << (32 - s)) != slots ||
        *base > self->size / 8 || slots > self->size / 8 - *base) {
        PyErr_SetString(PyExc_ValueError, "a table geometry outside the mapping");
        return -1;
    }
    *shift = (unsigned)s;
    return 0;
}

/* The probe of mmkv.view._probe for the cases this module handles: every record it reads lies
 * inside the mapping and every slot past log_end holds still. Returns 1 and sets *slot, *off
 * (0: the key has no slot; *slot is then the empty slot that ended the probe) when it has an
 * answer, 0 when the reference path must answer (damage, a record past the mapping, a slot
 * that moved, a table without an empty slot). */
static int probe(Map *self, uint64_t base, uint64_t mask, unsigned shift, uint64_t log_end,
                 unsigned kt, const unsigned char *kb, uint64_t klen, uint32_t h, uint64_t *slot,
                 uint64_t *off) {
    const unsigned char *buf = self->buf;
    const uint64_t size = self->size;
    const unsigned char *table = buf + base * 8;
    const uint64_t tag = (h & TAG_LOW) | TAG_BIT;
    uint64_t i = home(h, shift);
    for (uint64_t left = mask + 1; left; left--, i = (i + 1) & mask) {
        uint64_t w = load_acquire(table + i * 8);
        if (w == 0) {
            *slot = i;
            *off = 0;
            return 1;
        }
        if ((w >> SLOT_OFFSET_BITS) != tag) continue;
        uint64_t o = (w & SLOT_OFFSET_MASK) << 3;
        if (o < HEADER_SIZE || o > size - RECORD_SIZE || klen > size - RECORD_SIZE - o) return 0;
        const unsigned char *r = buf + o;
        int same = rd16(r + F_KLEN) == klen && r[F_KTYPE] == kt && rd32(r + F_HASH) == h &&
                   r[F_KIND] != K_TABLE && r[F_KIND] != K_COMMIT &&
                   memcmp(r + RECORD_SIZE, kb, (size_t)klen) == 0;
        /* Past log_end the space may be reused once the slot is re-pointed: the answer stands
         * only if the slot still holds the word it held when the record was read. The fence
         * keeps the record's loads before the second load of the slot (a seqlock's read). */
        if (o >= log_end) {
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (load_acquire(table + i * 8) != w) return 0;
        }
        if (same) {
            *slot = i;
            *off = o;
            return 1;
        }
    }
    return 0;
}

/* The wall clock, as time.time() reads it (CLOCK_REALTIME). */
static double wall_clock(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Map.read(base, mask, shift, log_end, key_type, key_bytes, now): mmkv.view.read, with the
 * hash computed here, and the clock read here only when now is None and the record has an
 * expiry. (value type, value bytes, expires_at, offset); False when the key is absent or
 * expired at the view's state; None: ask the reference path. */
static PyObject *map_read(Map *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "read(base, mask, shift, log_end, kt, kb, now)");
        return NULL;
    }
    if (check_alive(self)) return NULL;
    uint64_t base, mask, log_end, kt;
    unsigned shift;
    if (geometry(self, args, &base, &mask, &shift) || arg_u64(args[3], &log_end) ||
        arg_u64(args[4], &kt))
        return NULL;
    if (!PyBytes_CheckExact(args[5])) {
        PyErr_SetString(PyExc_TypeError, "key bytes must be bytes");
        return NULL;
    }
    const int have_now = args[6] != Py_None;
    double now = 0.0;
    if (have_now) {
        now = PyFloat_AsDouble(args[6]);
        if (now == -1.0 && PyErr_Occurred()) return NULL;
    }
    const unsigned char *kb = (const unsigned char *)PyBytes_AS_STRING(args[5]);
    uint64_t klen = (uint64_t)PyBytes_GET_SIZE(args[5]);
    if (kt > 255) Py_RETURN_NONE;
    uint32_t h = crc32_zlib((uint32_t)kt, kb, (size_t)klen);
    uint64_t slot, off;
    if (!probe(self, base, mask, shift, log_end, (unsigned)kt, kb, klen, h, &slot, &off))
        Py_RETURN_NONE;
    if (off == 0) Py_RETURN_FALSE;
    const unsigned char *buf = self->buf;
    const uint64_t size = self->size;
    const unsigned char *r = buf + off;
    /* mmkv.view.committed: walk back to the newest record below log_end. */
    while (off >= log_end) {
        uint64_t prev = rd64(r + F_PREV);
        if (prev == 0) Py_RETURN_FALSE;
        if (prev >= off || prev < HEADER_SIZE || prev > size - RECORD_SIZE) Py_RETURN_NONE;
        const unsigned char *p = buf + prev;
        if (rd32(p + F_HASH) != h || p[F_KTYPE] != kt || rd16(p + F_KLEN) != klen ||
            p[F_KIND] == K_TABLE || p[F_KIND] == K_COMMIT)
            Py_RETURN_NONE;
        off = prev;
        r = p;
    }
    unsigned kind = r[F_KIND];
    if (kind != K_PUT) {
        if (kind == K_DELETE || kind == K_EVICT || kind == K_EXPIRE) Py_RETURN_FALSE;
        Py_RETURN_NONE;
    }
    double exp = rdf64(r + F_EXP);
    if (exp != 0.0 && exp <= (have_now ? now : wall_clock())) Py_RETURN_FALSE;
    uint64_t vlen = rd32(r + F_VLEN);
    uint64_t total = align8(RECORD_SIZE + klen + vlen);
    if (total > size - off) Py_RETURN_NONE;
    if (crc32_zlib(0, r + 4, (size_t)(total - 4)) != rd32(r + F_CRC)) Py_RETURN_NONE;
    PyObject *value = PyBytes_FromStringAndSize((const char *)r + RECORD_SIZE + klen,
                                                (Py_ssize_t)vlen);
    if (!value) return NULL;
    PyObject *out = Py_BuildValue("(iNdK)", (int)r[F_VTYPE], value, exp, (unsigned long long)off);
    return out;
}

/* Map.probe(base, mask, shift, log_end, key_type, key_bytes, hash): mmkv.txn.probe for a
 * writer holding the lock after repair: (slot, offset, live size, has ttl) of the key's newest
 * committed record, (-1, 0, 0, 0) when it has no slot, None: ask the reference path. */
static PyObject *map_probe(Map *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "probe(base, mask, shift, log_end, kt, kb, h)");
        return NULL;
    }
    if (check_alive(self)) return NULL;
    uint64_t base, mask, log_end, kt, h;
    unsigned shift;
    if (geometry(self, args, &base, &mask, &shift) || arg_u64(args[3], &log_end) ||
        arg_u64(args[4], &kt) || arg_u64(args[6], &h))
        return NULL;
    if (!PyBytes_CheckExact(args[5])) {
        PyErr_SetString(PyExc_TypeError, "key bytes must be bytes");
        return NULL;
    }
    if (kt > 255 || h > 0xFFFFFFFFu) Py_RETURN_NONE;
    const unsigned char *kb = (const unsigned char *)PyBytes_AS_STRING(args[5]);
    uint64_t klen = (uint64_t)PyBytes_GET_SIZE(args[5]);
    uint64_t slot, off;
    if (!probe(self, base, mask, shift, log_end, (unsigned)kt, kb, klen, (uint32_t)h, &slot,
               &off))
        Py_RETURN_NONE;
    if (off == 0) return Py_BuildValue("(iiii)", -1, 0, 0, 0);
    if (off >= log_end) Py_RETURN_NONE; /* the reference path names this damage */
    const unsigned char *r = self->buf + off;
    if (r[F_KIND] == K_PUT) {
        uint64_t size = align8(RECORD_SIZE + klen + rd32(r + F_VLEN));
        return Py_BuildValue("(KKKi)", (unsigned long long)slot, (unsigned long long)off,
                             (unsigned long long)size, rdf64(r + F_EXP) != 0.0);
    }
    return Py_BuildValue("(KKii)", (unsigned long long)slot, (unsigned long long)off, 0, 0);
}

#define META_FIELDS 17
#define META_SIZE 192
#define META_CRC_SPAN 184
#define W_PUBLISHED 2
#define PWRITE_BYTES 2048
static const uint64_t META_OFFSETS[2] = {64, 256};

/* Map.put_alone(meta, slot, gen, base, mask, shift, kt, kb, vt, vb, exp): the fused single put
 * of mmkv.writer.Writer.put_one, for the case it commits itself, made here in one call: the
 * probe, the record written into the mapping at meta.log_end, its slot (a release store), the
 * new meta written into the meta slot that does not hold ``meta`` (slot ``slot`` does), and
 * the published word (a release store): the same stores, in the same order, with the same
 * bytes as the Python path. Returns the new meta's 17 fields, or None when the Python path
 * must do the put (the index must grow, eviction, a value of PWRITE_BYTES or more, a record
 * past the mapping, anything the probe hands back). The caller holds the writer lock, has
 * caught up and claimed ``gen``, and uses this only when no effects recorder is installed. */
static PyObject *map_put_alone(Map *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError,
                        "put_alone(meta, slot, gen, base, mask, shift, kt, kb, vt, vb, exp)");
        return NULL;
    }
    if (check_alive(self)) return NULL;
    if (!self->writable) Py_RETURN_NONE;
    PyObject *meta_obj = args[0];
    if (!PyTuple_Check(meta_obj) || PyTuple_GET_SIZE(meta_obj) != META_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "meta must be a tuple of 17 ints");
        return NULL;
    }
    uint64_t m[META_FIELDS];
    for (int i = 0; i < META_FIELDS; i++)
        if (arg_u64(PyTuple_GET_ITEM(meta_obj, i), &m[i])) return NULL;
    uint64_t view_slot, gen, kt, vt;
    if (arg_u64(args[1], &view_slot) || arg_u64(args[2], &gen)) return NULL;
    uint64_t base, mask;
    unsigned shift;
    if (geometry(self, args + 3, &base, &mask, &shift) || arg_u64(args[6], &kt) ||
        arg_u64(args[8], &vt))
        return NULL;
    if (!PyBytes_CheckExact(args[7]) || !PyBytes_CheckExact(args[9])) Py_RETURN_NONE;
    double exp = PyFloat_AsDouble(args[10]);
    if (exp == -1.0 && PyErr_Occurred()) return NULL;
    if (view_slot > 1 || kt > 255 || vt > 255) Py_RETURN_NONE;
    const unsigned char *kb = (const unsigned char *)PyBytes_AS_STRING(args[7]);
    const unsigned char *vb = (const unsigned char *)PyBytes_AS_STRING(args[9]);
    uint64_t klen = (uint64_t)PyBytes_GET_SIZE(args[7]), vlen = (uint64_t)PyBytes_GET_SIZE(args[9]);
    if (klen > 0xFFFF || vlen > 0xFFFFFFFFu) Py_RETURN_NONE;
    /* The meta fields, as mmkv.format.Meta names them. */
    uint64_t start = m[1], capacity = m[3], used = m[4], keys = m[5], ttls = m[6];
    uint64_t live = m[7], dead = m[8], max_bytes = m[9], cursor = m[12], expired = m[13];
    uint64_t chain = m[15];
    if (capacity != mask + 1 || start < HEADER_SIZE || (start & 7)) Py_RETURN_NONE;
    uint32_t h = crc32_zlib((uint32_t)kt, kb, (size_t)klen);
    uint64_t slot, prev;
    if (!probe(self, base, mask, shift, start, (unsigned)kt, kb, klen, h, &slot, &prev))
        Py_RETURN_NONE;
    uint64_t csize = 0;
    int cttl = 0;
    int found = prev != 0;
    if (found) {
        if (prev >= start) Py_RETURN_NONE;
        const unsigned char *c = self->buf + prev;
        if (c[F_KIND] == K_PUT) {
            csize = align8(RECORD_SIZE + klen + rd32(c + F_VLEN));
            cttl = rdf64(c + F_EXP) != 0.0;
        }
    }
    uint64_t size = align8(RECORD_SIZE + klen + vlen);
    if (size >= PWRITE_BYTES || size > self->size || start > self->size - size) Py_RETURN_NONE;
    live = live + size - csize;
    if (csize && prev < cursor) expired -= csize; /* as in txn.effects() */
    if (max_bytes && live - expired > max_bytes) Py_RETURN_NONE;
    /* A new key must leave the index at most three quarters full: mmkv.index.fits. */
    if (!found && 4 * (used + 1) > 3 * capacity) Py_RETURN_NONE;
    /* The empty slot for a new key: the probe stopped at it. */
    if (!found) used += 1;
    /* The record, into the mapping past log_end (as mmkv.format.encode_record lays it). */
    unsigned char *r = self->buf + start;
    memset(r, 0, RECORD_SIZE);
    r[F_KIND] = K_PUT;
    r[F_KTYPE] = (unsigned char)kt;
    r[F_VTYPE] = (unsigned char)vt;
    memcpy(r + F_GEN, &gen, 8);
    memcpy(r + F_PREV, &prev, 8);
    uint32_t h32 = h, v32 = (uint32_t)vlen;
    uint16_t k16 = (uint16_t)klen;
    memcpy(r + F_HASH, &h32, 4);
    memcpy(r + F_KLEN, &k16, 2);
    memcpy(r + F_VLEN, &v32, 4);
    memcpy(r + F_EXP, &exp, 8);
    memcpy(r + RECORD_SIZE, kb, (size_t)klen);
    memcpy(r + RECORD_SIZE + klen, vb, (size_t)vlen);
    memset(r + RECORD_SIZE + klen + vlen, 0, (size_t)(size - RECORD_SIZE - klen - vlen));
    uint32_t crc = crc32_zlib(0, r + 4, (size_t)(size - 4));
    memcpy(r + F_CRC, &crc, 4);
    /* The slot: re-pointed, or the empty slot the probe ended at. */
    uint64_t word = ((uint64_t)((h & TAG_LOW) | TAG_BIT) << SLOT_OFFSET_BITS) | (start >> 3);
    store_release(self->buf + (base + slot) * 8, word);
    /* The new meta (mmkv.format.Meta.encode), into the slot not holding the published one. */
    uint64_t out[META_FIELDS];
    memcpy(out, m, sizeof out);
    unsigned char pair[12];
    memcpy(pair, &crc, 4);
    memcpy(pair + 4, &size, 8);
    out[0] = gen;
    out[1] = start + size;
    out[4] = used;
    out[5] = keys + 1 - (found && csize ? 1 : 0);
    out[6] = ttls + (exp != 0.0) - (csize ? (uint64_t)cttl : 0);
    out[7] = live;
    out[8] = dead + csize;
    out[13] = expired;
    out[14] = start;
    out[15] = crc32_zlib((uint32_t)chain, pair, 12);
    unsigned char encoded[META_SIZE];
    memset(encoded, 0, META_SIZE);
    memcpy(encoded, out, sizeof out);
    uint32_t mcrc = crc32_zlib(0, encoded, META_CRC_SPAN);
    memcpy(encoded + META_CRC_SPAN, &mcrc, 4);
    memcpy(self->buf + META_OFFSETS[1 - view_slot], encoded, META_SIZE);
    store_release(self->buf + W_PUBLISHED * 8, gen); /* the commit point */
    PyObject *t = PyTuple_New(META_FIELDS);
    if (!t) return NULL;
    for (int i = 0; i < META_FIELDS; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(out[i]);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static int word_index(Map *self, PyObject *o, uint64_t *index) {
    if (check_alive(self) || arg_u64(o, index)) return -1;
    if (*index >= self->size / 8) {
        PyErr_SetString(PyExc_IndexError, "word index outside the mapping");
        return -1;
    }
    return 0;
}

/* An acquire fence, then an acquire load: the load is ordered after every load the caller made
 * before it (what a re-check of a word after reading the bytes it guards needs, on CPUs that
 * reorder loads), and every load after it is ordered after it. On x86-64 both are free. */
static PyObject *map_load(Map *self, PyObject *arg) {
    uint64_t i;
    if (word_index(self, arg, &i)) return NULL;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    return PyLong_FromUnsignedLongLong(load_acquire(self->buf + i * 8));
}

static int store_one(Map *self, PyObject *index, PyObject *value) {
    uint64_t i, v;
    if (word_index(self, index, &i) || arg_u64(value, &v)) return -1;
    if (!self->writable) {
        PyErr_SetString(PyExc_TypeError, "the mapping is read-only");
        return -1;
    }
    store_release(self->buf + i * 8, v);
    return 0;
}

/* Map.store(index, value): a release store of one word. */
static PyObject *map_store(Map *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "store(index, value)");
        return NULL;
    }
    if (store_one(self, args[0], args[1])) return NULL;
    Py_RETURN_NONE;
}

/* Map.store_many(pairs): release stores of (index, value) pairs, in order. */
static PyObject *map_store_many(Map *self, PyObject *pairs) {
    PyObject *it = PyObject_GetIter(pairs);
    if (!it) return NULL;
    PyObject *item;
    while ((item = PyIter_Next(it))) {
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            Py_DECREF(item);
            Py_DECREF(it);
            PyErr_SetString(PyExc_TypeError, "store_many takes (index, value) pairs");
            return NULL;
        }
        int failed = store_one(self, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1));
        Py_DECREF(item);
        if (failed) {
            Py_DECREF(it);
            return NULL;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

static PyObject *map_release(Map *self, PyObject *unused) {
    (void)unused;
    if (self->have_view) {
        PyBuffer_Release(&self->view);
        self->have_view = 0;
    }
    self->buf = NULL;
    Py_RETURN_NONE;
}

static PyObject *map_get_size(Map *self, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(self->buf ? self->size : 0);
}

static PyMethodDef map_methods[] = {
    {"read", (PyCFunction)(void (*)(void))map_read, METH_FASTCALL,
     "read(base, mask, shift, log_end, kt, kb, now) -> (vt, value, exp, off) | False | None"},
    {"probe", (PyCFunction)(void (*)(void))map_probe, METH_FASTCALL,
     "probe(base, mask, shift, log_end, kt, kb, h) -> (slot, off, size, ttl) | None"},
    {"put_alone", (PyCFunction)(void (*)(void))map_put_alone, METH_FASTCALL,
     "put_alone(meta, slot, gen, base, mask, shift, kt, kb, vt, vb, exp): a fused put"},
    {"load", (PyCFunction)map_load, METH_O, "load(index): an acquire load of one word"},
    {"store", (PyCFunction)(void (*)(void))map_store, METH_FASTCALL,
     "store(index, value): a release store of one word"},
    {"store_many", (PyCFunction)map_store_many, METH_O,
     "store_many(pairs): release stores of (index, value) pairs, in order"},
    {"release", (PyCFunction)map_release, METH_NOARGS, "give the mapping back (no more use)"},
    {NULL, NULL, 0, NULL},
};

/* map[index] and map[index] = value: acquire loads and release stores of the word at byte
 * offset 8 * index, so that the engine's Python code, given a Map as its ``words``, makes
 * every load and store of a word with the ordering the protocol needs. */
static Py_ssize_t map_length(Map *self) { return self->buf ? (Py_ssize_t)(self->size / 8) : 0; }

static PyObject *map_subscript(Map *self, PyObject *key) {
    if (!PyLong_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "word indexes are ints");
        return NULL;
    }
    return map_load(self, key);
}

static int map_ass_subscript(Map *self, PyObject *key, PyObject *value) {
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "words cannot be deleted");
        return -1;
    }
    if (!PyLong_Check(key)) {
        PyErr_SetString(PyExc_TypeError, "word indexes are ints");
        return -1;
    }
    return store_one(self, key, value);
}

static PyMappingMethods map_as_mapping = {
    (lenfunc)map_length,
    (binaryfunc)map_subscript,
    (objobjargproc)map_ass_subscript,
};

static PyGetSetDef map_getset[] = {
    {"size", (getter)map_get_size, NULL, "bytes of the mapping this map reads", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject MapType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mmkv._core.Map",
    .tp_basicsize = sizeof(Map),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Map(mm): the compiled reads and stores over one shared mapping.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)map_init,
    .tp_dealloc = (destructor)map_dealloc,
    .tp_methods = map_methods,
    .tp_getset = map_getset,
    .tp_as_mapping = &map_as_mapping,
};

/* ---------------------------------------------------------------- module functions */

static PyObject *m_crc32(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "crc32(data[, start])");
        return NULL;
    }
    uint32_t start = 0;
    if (nargs == 2) {
        start = (uint32_t)PyLong_AsUnsignedLongMask(args[1]);
        if (PyErr_Occurred()) return NULL;
    }
    Py_buffer b;
    if (PyObject_GetBuffer(args[0], &b, PyBUF_SIMPLE)) return NULL;
    uint32_t c = crc32_zlib(start, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLong(c);
}

/* encode_record(kind, kt, vt, gen, prev, h, kb, vb, exp) -> (bytes, crc):
 * mmkv.format.encode_record, returning the record's crc too (for the chain). */
static PyObject *m_encode_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "encode_record(kind, kt, vt, gen, prev, h, kb, vb, exp)");
        return NULL;
    }
    uint64_t kind, kt, vt, gen, prev, h;
    if (arg_u64(args[0], &kind) || arg_u64(args[1], &kt) || arg_u64(args[2], &vt) ||
        arg_u64(args[3], &gen) || arg_u64(args[4], &prev) || arg_u64(args[5], &h))
        return NULL;
    if (kind > 255 || kt > 255 || vt > 255 || h > 0xFFFFFFFFu) {
        PyErr_SetString(PyExc_ValueError, "a record field out of range");
        return NULL;
    }
    double exp = PyFloat_AsDouble(args[8]);
    if (exp == -1.0 && PyErr_Occurred()) return NULL;
    Py_buffer k, v;
    if (PyObject_GetBuffer(args[6], &k, PyBUF_SIMPLE)) return NULL;
    if (PyObject_GetBuffer(args[7], &v, PyBUF_SIMPLE)) {
        PyBuffer_Release(&k);
        return NULL;
    }
    PyObject *out = NULL;
    if (k.len > 0xFFFF || (uint64_t)v.len > UINT64_C(0xFFFFFFFF) - RECORD_SIZE - 0xFFFF - 8) {
        PyErr_SetString(PyExc_ValueError, "a key or value too large for a record");
        goto done;
    }
    uint64_t total = align8(RECORD_SIZE + (uint64_t)k.len + (uint64_t)v.len);
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!bytes) goto done;
    unsigned char *r = (unsigned char *)PyBytes_AS_STRING(bytes);
    memset(r, 0, RECORD_SIZE);
    r[F_KIND] = (unsigned char)kind;
    r[F_KTYPE] = (unsigned char)kt;
    r[F_VTYPE] = (unsigned char)vt;
    memcpy(r + F_GEN, &gen, 8);
    memcpy(r + F_PREV, &prev, 8);
    uint32_t h32 = (uint32_t)h, vlen = (uint32_t)v.len;
    uint16_t klen = (uint16_t)k.len;
    memcpy(r + F_HASH, &h32, 4);
    memcpy(r + F_KLEN, &klen, 2);
    memcpy(r + F_VLEN, &vlen, 4);
    memcpy(r + F_EXP, &exp, 8);
    memcpy(r + RECORD_SIZE, k.buf, (size_t)k.len);
    memcpy(r + RECORD_SIZE + k.len, v.buf, (size_t)v.len);
    uint64_t used = RECORD_SIZE + (uint64_t)k.len + (uint64_t)v.len;
    memset(r + used, 0, (size_t)(total - used));
    uint32_t crc = crc32_zlib(0, r + 4, (size_t)(total - 4));
    memcpy(r + F_CRC, &crc, 4);
    out = Py_BuildValue("(NI)", bytes, (unsigned int)crc);
done:
    PyBuffer_Release(&k);
    PyBuffer_Release(&v);
    return out;
}

/* chain_step(chain, crc, size): mmkv.format.chain_step. */
static PyObject *m_chain_step(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "chain_step(chain, crc, size)");
        return NULL;
    }
    uint64_t chain, crc, size;
    if (arg_u64(args[0], &chain) || arg_u64(args[1], &crc) || arg_u64(args[2], &size)) return NULL;
    if (chain > 0xFFFFFFFFu || crc > 0xFFFFFFFFu) {
        PyErr_SetString(PyExc_ValueError, "a chain or crc is 32 bits");
        return NULL;
    }
    unsigned char pair[12];
    uint32_t c32 = (uint32_t)crc;
    memcpy(pair, &c32, 4);
    memcpy(pair + 4, &size, 8);
    return PyLong_FromUnsignedLong(crc32_zlib((uint32_t)chain, pair, 12));
}

static PyObject *m_uses_folding(PyObject *module, PyObject *unused) {
    (void)module;
    (void)unused;
    return PyBool_FromLong(crc_uses_folding());
}

static PyMethodDef module_methods[] = {
    {"crc32", (PyCFunction)(void (*)(void))m_crc32, METH_FASTCALL,
     "crc32(data[, start]): zlib.crc32(data, start)"},
    {"encode_record", (PyCFunction)(void (*)(void))m_encode_record, METH_FASTCALL,
     "encode_record(kind, kt, vt, gen, prev, h, kb, vb, exp) -> (record bytes, crc)"},
    {"chain_step", (PyCFunction)(void (*)(void))m_chain_step, METH_FASTCALL,
     "chain_step(chain, crc, size): mmkv.format.chain_step"},
    {"uses_folding", (PyCFunction)m_uses_folding, METH_NOARGS,
     "whether crc32 uses carry-less multiplication on this CPU"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "mmkv._core", "The compiled hot paths of mmkv (see mmkv/core.py).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void) {
    crc_init_tables();
    crc_init_folding();
    if (PyType_Ready(&MapType) < 0) return NULL;
    PyObject *m = PyModule_Create(&core_module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Map", (PyObject *)&MapType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
