/* Exact histograms of raw 8- and 16-bit codes: the inner loop of `stats` on F16, BF16, the
 * F8s and the 8/16-bit integers (analysis/stats.py, through code_counts.py).
 *
 * Why C: numpy's bincount widens every code to int64 first and scatters into an int64 table
 * (512 KiB for 65,536 codes, twice what fits a core's half of L2 comfortably): about 1.4 ns a
 * value here. This loop reads the little-endian codes where they lie and counts into a 32-bit
 * table (256 KiB) that is added into the caller's int64 counts at the end: about 0.5 ns a
 * value, which is what lets a warm `stats` keep pace with the page cache on two cores
 * (bench/RESULTS.md). Optional: without a C compiler the package installs without it and
 * code_counts.py uses numpy, with the same results.
 *
 * count(data, counts): `data` any contiguous buffer of codes (1 or 2 bytes each, 2-byte codes
 * little-endian, no alignment needed); `counts` a writable, 8-byte aligned buffer of 256 or
 * 65536 int64, which also says the code width. Adds each code's occurrences to its count. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

/* A 32-bit table cannot overflow within this many values; longer buffers are counted in runs. */
#define RUN_VALUES ((Py_ssize_t)1 << 31)

static void count_run(const unsigned char *bytes, Py_ssize_t values, int width, uint32_t *table) {
    if (width == 1) {
        for (Py_ssize_t i = 0; i < values; i++)
            table[bytes[i]]++;
    } else {
        for (Py_ssize_t i = 0; i < values; i++)
            table[(uint16_t)(bytes[2 * i] | (bytes[2 * i + 1] << 8))]++;
    }
}

static PyObject *count(PyObject *self, PyObject *args) {
    Py_buffer data, counts;
    if (!PyArg_ParseTuple(args, "y*w*:count", &data, &counts))
        return NULL;
    PyObject *result = NULL;
    int width = counts.len == 256 * 8 ? 1 : counts.len == 65536 * 8 ? 2 : 0;
    if (width == 0) {
        PyErr_Format(PyExc_ValueError, "counts must hold 256 or 65536 int64, not %zd bytes", counts.len);
        goto done;
    }
    if ((uintptr_t)counts.buf % 8 != 0) {
        PyErr_SetString(PyExc_ValueError, "counts must be 8-byte aligned");
        goto done;
    }
    if (data.len % width != 0) {
        PyErr_Format(PyExc_ValueError, "data of %zd bytes is not a whole number of %d-byte codes", data.len, width);
        goto done;
    }
    Py_ssize_t codes = (Py_ssize_t)1 << (8 * width);
    uint32_t *table = malloc(codes * sizeof(uint32_t));
    if (table == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t *out = (int64_t *)counts.buf;
    const unsigned char *bytes = (const unsigned char *)data.buf;
    Py_ssize_t values = data.len / width;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t start = 0; start < values; start += RUN_VALUES) {
        Py_ssize_t run = values - start < RUN_VALUES ? values - start : RUN_VALUES;
        for (Py_ssize_t code = 0; code < codes; code++)
            table[code] = 0;
        count_run(bytes + start * width, run, width, table);
        for (Py_ssize_t code = 0; code < codes; code++)
            out[code] += table[code];
    }
    Py_END_ALLOW_THREADS
    free(table);
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&counts);
    return result;
}

static PyMethodDef methods[] = {
    {"count", count, METH_VARARGS, "count(data, counts): add the occurrences of each 1- or 2-byte code in data to counts (256 or 65536 int64)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_codes", "Exact histograms of raw 8- and 16-bit codes.", -1, methods};

PyMODINIT_FUNC PyInit__codes(void) { return PyModule_Create(&module); }
