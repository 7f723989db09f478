/* The embedded log's read path in C: a chunk's bytes -> Record named tuples.
 *
 * One function, the same as duality.log.sqlite_chunks.take (read that module for the
 * chunk format and for what the reader does with the records):
 *
 *     take(out, topic, partition, first, data, from_offset, limit) -> None
 *
 * appends to the list `out` a duality.events.model.Record for each record of the chunk
 * `data` (first offset `first`) at or after `from_offset`, until `out` holds `limit`.
 *
 * Every record read from the embedded log (by replicate, tables, the log commands) comes
 * through here. The compiled Python version unpacks each header into a tuple of Python
 * ints and copies the record into a temporary tuple before making the named tuple; here
 * a record costs its own objects only (the named tuple, its offset and timestamp, its
 * key and value bytes). Records with headers (rare: Debezium's primary-key change
 * markers) have them decoded by sqlite_chunks.decode_headers, as in Python.
 *
 * A chunk that ends inside a record's header or bytes raises ValueError naming the
 * offset: the log was written by pack_appended, so that is a damaged file.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

/* <Iqiiii: offset delta, timestamp, key, value and headers lengths, schema id. */
#define HEADER_SIZE 28
#define RECORD_FIELDS 8

static PyObject *record_type;     /* duality.events.model.Record */
static PyObject *decode_headers;  /* duality.log.sqlite_chunks.decode_headers, on first use */
static PyObject *no_headers;      /* () */

static int32_t
i32_at(const char *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v; /* the log is little-endian, as is every machine CPython builds this for */
}

static PyObject *
bytes_or_none(const char *data, Py_ssize_t *pos, int32_t len)
{
    if (len < 0)
        Py_RETURN_NONE;
    PyObject *out = PyBytes_FromStringAndSize(data + *pos, len);
    *pos += len;
    return out;
}

/* A new reference to module.name, or NULL with an exception set. */
static PyObject *
attribute_of(const char *module_name, const char *name)
{
    PyObject *module = PyImport_ImportModule(module_name);
    if (module == NULL)
        return NULL;
    PyObject *out = PyObject_GetAttrString(module, name);
    Py_DECREF(module);
    return out;
}

static PyObject *
headers_of(const char *data, Py_ssize_t pos, int32_t len)
{
    if (len <= 0) {
        Py_INCREF(no_headers);
        return no_headers;
    }
    if (decode_headers == NULL
        && (decode_headers = attribute_of("duality.log.sqlite_chunks", "decode_headers"))
               == NULL)
        return NULL;
    PyObject *raw = PyBytes_FromStringAndSize(data + pos, len);
    if (raw == NULL)
        return NULL;
    PyObject *out = PyObject_CallOneArg(decode_headers, raw);
    Py_DECREF(raw);
    return out;
}

static PyObject *
make_record(PyObject *topic, PyObject *partition, long long offset, const char *header,
            const char *data, Py_ssize_t pos)
{
    int64_t ts;
    memcpy(&ts, header + 4, 8);
    int32_t key_len = i32_at(header + 12), value_len = i32_at(header + 16);
    int32_t headers_len = i32_at(header + 20), schema_id = i32_at(header + 24);
    PyObject *items[RECORD_FIELDS] = {topic, partition, NULL, NULL, NULL, NULL, NULL, NULL};
    Py_INCREF(topic);
    Py_INCREF(partition);
    int ok = (items[2] = PyLong_FromLongLong(offset)) != NULL
             && (items[3] = PyLong_FromLongLong(ts)) != NULL
             && (items[4] = bytes_or_none(data, &pos, key_len)) != NULL
             && (items[5] = bytes_or_none(data, &pos, value_len)) != NULL
             && (items[6] = headers_of(data, pos, headers_len)) != NULL
             && (items[7] = schema_id < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(schema_id))
                    != NULL;
    PyObject *record = ok ? ((PyTypeObject *)record_type)->tp_alloc(
                                (PyTypeObject *)record_type, RECORD_FIELDS)
                          : NULL;
    if (record == NULL) {
        for (int i = 0; i < RECORD_FIELDS; i++)
            Py_XDECREF(items[i]);
        return NULL;
    }
    int holds_containers = 0;
    for (int i = 0; i < RECORD_FIELDS; i++) {
        holds_containers |= PyObject_GC_IsTracked(items[i]);
        PyTuple_SET_ITEM(record, i, items[i]);
    }
    /* Of atomic values only (no headers), a record can be in no reference cycle: out of
       the cyclic collector's lists, which would otherwise scan every record alive at
       each collection (replicate: ~40 ms a collection, with two batches alive). */
    if (!holds_containers)
        PyObject_GC_UnTrack(record);
    return record;
}

static PyObject *
damaged(long long offset)
{
    PyErr_Format(PyExc_ValueError,
                 "the log's chunk holding offset %lld ends inside a record: the log file "
                 "is damaged",
                 offset);
    return NULL;
}

static PyObject *
take(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *out, *topic, *partition, *data_obj;
    long long first, from_offset;
    Py_ssize_t limit;
    (void)self;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "take(out, topic, partition, first, data, from_offset, limit)");
        return NULL;
    }
    out = args[0], topic = args[1], partition = args[2], data_obj = args[4];
    if (!PyList_Check(out) || !PyBytes_Check(data_obj)) {
        PyErr_SetString(PyExc_TypeError, "take: out must be a list and data bytes");
        return NULL;
    }
    first = PyLong_AsLongLong(args[3]);
    from_offset = PyLong_AsLongLong(args[5]);
    limit = PyLong_AsSsize_t(args[6]);
    if (PyErr_Occurred())
        return NULL;
    const char *data = PyBytes_AS_STRING(data_obj);
    Py_ssize_t end = PyBytes_GET_SIZE(data_obj), pos = 0;
    while (pos < end && PyList_GET_SIZE(out) < limit) {
        if (end - pos < HEADER_SIZE)
            return damaged(first);
        const char *header = data + pos;
        uint32_t delta;
        memcpy(&delta, header, 4);
        long long offset = first + (long long)delta;
        int32_t lens[3] = {i32_at(header + 12), i32_at(header + 16), i32_at(header + 20)};
        Py_ssize_t size = 0;
        for (int i = 0; i < 3; i++)
            size += lens[i] > 0 ? lens[i] : 0;
        pos += HEADER_SIZE;
        if (size > end - pos)
            return damaged(offset);
        if (offset >= from_offset) {
            PyObject *record = make_record(topic, partition, offset, header, data, pos);
            if (record == NULL)
                return NULL;
            int failed = PyList_Append(out, record);
            Py_DECREF(record);
            if (failed)
                return NULL;
        }
        pos += size;
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"take", (PyCFunction)(void (*)(void))take, METH_FASTCALL,
     "take(out, topic, partition, first, data, from_offset, limit): append the records "
     "of a chunk at or after from_offset to out until it holds limit."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_chunks",
    "The embedded log's read path in C (see duality.log.sqlite_chunks.take).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__chunks(void)
{
    record_type = attribute_of("duality.events.model", "Record");
    if (record_type == NULL)
        return NULL;
    if (!PyType_Check(record_type)
        || !PyType_IsSubtype((PyTypeObject *)record_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_ImportError, "duality.events.model.Record is not a tuple type");
        return NULL;
    }
    no_headers = PyTuple_New(0);
    if (no_headers == NULL)
        return NULL;
    return PyModule_Create(&module);
}
