/* place(): the recorder's placement of packets, the C twin of WavTimeline._runs. */

#include "fastrtp.h"

/* ------------------------------------------------------------------------
 * place(): the recorder's placement of packets on its timeline
 *
 * media._wavwriter.WavTimeline._runs in C, for the recorders' writer thread:
 * for one channel's batch [arrival, packet, arrival, packet, ...] it decides
 * where each packet's samples go (by RTP timestamp, unless that is more than
 * `tolerance` samples from its arrival), decodes G.711 with the codec's
 * 256-entry table and returns the runs of contiguous samples.
 */

static int
append_run(PyObject *runs, long long start, const int16_t *samples, Py_ssize_t count)
{
    PyObject *pcm = PyBytes_FromStringAndSize((const char *)samples, count * 2);
    if (pcm == NULL) {
        return -1;
    }
    PyObject *run = Py_BuildValue("(LN)", start, pcm);
    if (run == NULL) {
        return -1;
    }
    int status = PyList_Append(runs, run);
    Py_DECREF(run);
    return status;
}

/* place(items, table, origin, rate, tolerance, next_pos, next_ts)
 *   -> (runs, next_pos, next_ts); runs is [(start, native int16 bytes), ...] */
PyObject *
fast_place(PyObject *module, PyObject *args)
{
    PyObject *items, *next_pos_obj;
    Py_buffer table;
    double origin;
    int rate;
    long long tolerance;
    unsigned long long next_ts_arg;
    if (!PyArg_ParseTuple(
            args, "O!y*diLOK", &PyList_Type, &items, &table, &origin, &rate, &tolerance,
            &next_pos_obj, &next_ts_arg)) {
        return NULL;
    }
    if (table.len != 512) {
        PyBuffer_Release(&table);
        PyErr_SetString(PyExc_ValueError, "table must be 256 native int16 samples");
        return NULL;
    }
    int16_t decode[256];
    memcpy(decode, table.buf, sizeof(decode));
    PyBuffer_Release(&table);
    int have_next = next_pos_obj != Py_None;
    long long next_pos = 0;
    if (have_next) {
        next_pos = PyLong_AsLongLong(next_pos_obj);
        if (next_pos == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    unsigned int next_ts = (unsigned int)(next_ts_arg & 0xFFFFFFFFu);
    PyObject *runs = PyList_New(0);
    if (runs == NULL) {
        return NULL;
    }
    Py_ssize_t capacity = 4096, count = 0;
    int16_t *buffer = PyMem_Malloc((size_t)capacity * sizeof(int16_t));
    if (buffer == NULL) {
        Py_DECREF(runs);
        return PyErr_NoMemory();
    }
    int in_run = 0;
    long long run_start = 0, run_end = 0;
    Py_ssize_t n = PyList_GET_SIZE(items);
    for (Py_ssize_t i = 0; i + 1 < n; i += 2) {
        double arrival = PyFloat_AsDouble(PyList_GET_ITEM(items, i));
        if (arrival == -1.0 && PyErr_Occurred()) {
            goto error;
        }
        PyObject *data = PyList_GET_ITEM(items, i + 1);
        if (!PyBytes_Check(data)) {
            PyErr_SetString(PyExc_TypeError, "a recorded packet must be bytes");
            goto error;
        }
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(data);
        Py_ssize_t length = PyBytes_GET_SIZE(data), start, end;
        if (length >= 12 && p[0] == 0x80) {
            start = 12;
            end = length;
        }
        else if (!payload_bounds(p, length, &start, &end)) {
            continue;
        }
        unsigned int timestamp = ((unsigned int)p[4] << 24) | ((unsigned int)p[5] << 16) |
                                 ((unsigned int)p[6] << 8) | p[7];
        long long heard = llrint((arrival - origin) * (double)rate);
        long long position;
        if (!have_next) {
            position = heard;
        }
        else {
            /* The signed 32-bit distance, wrap included. */
            long long step = (long long)(int32_t)(timestamp - next_ts);
            position = next_pos + step;
            if (!(-tolerance <= position - heard && position - heard <= tolerance)) {
                position = heard;
            }
        }
        if (position != run_end || !in_run) {
            if (in_run && append_run(runs, run_start, buffer, count) < 0) {
                goto error;
            }
            count = 0;
            in_run = 1;
            run_start = run_end = position;
        }
        Py_ssize_t size = end - start;
        if (count + size > capacity) {
            while (count + size > capacity) {
                capacity *= 2;
            }
            int16_t *grown = PyMem_Realloc(buffer, (size_t)capacity * sizeof(int16_t));
            if (grown == NULL) {
                PyErr_NoMemory();
                goto error;
            }
            buffer = grown;
        }
        for (Py_ssize_t k = 0; k < size; k++) {
            buffer[count + k] = decode[p[start + k]];
        }
        count += size;
        run_end += size;
        have_next = 1;
        next_pos = run_end;
        next_ts = (unsigned int)(timestamp + (unsigned int)size);
    }
    if (in_run && append_run(runs, run_start, buffer, count) < 0) {
        goto error;
    }
    PyMem_Free(buffer);
    if (!have_next) {
        return Py_BuildValue("(NOk)", runs, Py_None, (unsigned long)next_ts);
    }
    return Py_BuildValue("(NLk)", runs, next_pos, (unsigned long)next_ts);
error:
    PyMem_Free(buffer);
    Py_DECREF(runs);
    return NULL;
}
