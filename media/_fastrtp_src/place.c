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

/* ------------------------------------------------------------------------
 * mix(): WavTimeline._emit in C
 *
 * Interleaves each channel's pending samples and new runs into the frames
 * from `written` up to `upto`, later pieces over earlier ones, silence where
 * nothing arrived; what lies beyond `upto` becomes the channel's new pending.
 * Samples are native int16 in any buffer (bytes from place(), numpy arrays
 * from the reference path); the frames come back little-endian, as WAV has.
 */

typedef struct {
    Py_buffer view;
    long long start;
    Py_ssize_t count;
} Piece;

static void
release_pieces(Piece *pieces, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyBuffer_Release(&pieces[i].view);
    }
}

/* The pieces of one channel: its pending samples at `written`, then its runs. */
static Py_ssize_t
channel_pieces(PyObject *pending, PyObject *runs, long long written, Piece **out)
{
    if (!PyList_Check(runs)) {
        PyErr_SetString(PyExc_TypeError, "runs must be a list of (start, samples)");
        return -1;
    }
    Py_ssize_t n = 1 + PyList_GET_SIZE(runs);
    Piece *pieces = PyMem_Calloc((size_t)n, sizeof(Piece));
    if (pieces == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t filled = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *samples;
        long long start;
        if (i == 0) {
            samples = pending;
            start = written;
        }
        else {
            PyObject *run = PyList_GET_ITEM(runs, i - 1);
            if (!PyTuple_Check(run) || PyTuple_GET_SIZE(run) != 2) {
                PyErr_SetString(PyExc_TypeError, "a run is a (start, samples) tuple");
                goto error;
            }
            start = PyLong_AsLongLong(PyTuple_GET_ITEM(run, 0));
            if (start == -1 && PyErr_Occurred()) {
                goto error;
            }
            samples = PyTuple_GET_ITEM(run, 1);
        }
        if (PyObject_GetBuffer(samples, &pieces[i].view, PyBUF_C_CONTIGUOUS) < 0) {
            goto error;
        }
        filled++;
        if (pieces[i].view.len % 2) {
            PyErr_SetString(PyExc_ValueError, "samples must be whole int16 values");
            goto error;
        }
        pieces[i].start = start;
        pieces[i].count = pieces[i].view.len / 2;
    }
    *out = pieces;
    return n;
error:
    release_pieces(pieces, filled);
    PyMem_Free(pieces);
    return -1;
}

static inline uint16_t
little_endian(int16_t sample)
{
    uint16_t value = (uint16_t)sample;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    value = (uint16_t)((value >> 8) | (value << 8));
#endif
    return value;
}

/* mix(written, upto, pendings, runs) -> (frames, pendings) */
PyObject *
fast_mix(PyObject *module, PyObject *args)
{
    long long written, upto;
    PyObject *pendings, *all_runs;
    if (!PyArg_ParseTuple(
            args, "LLO!O!", &written, &upto, &PyList_Type, &pendings, &PyList_Type,
            &all_runs)) {
        return NULL;
    }
    Py_ssize_t channels = PyList_GET_SIZE(pendings);
    if (channels < 1 || PyList_GET_SIZE(all_runs) != channels) {
        PyErr_SetString(PyExc_ValueError, "one pending and one list of runs per channel");
        return NULL;
    }
    if (upto < written) {
        upto = written;
    }
    long long frames_count = upto - written;
    PyObject *frames = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(frames_count * channels * 2));
    if (frames == NULL) {
        return NULL;
    }
    uint16_t *out = (uint16_t *)PyBytes_AS_STRING(frames);
    memset(out, 0, (size_t)(frames_count * channels * 2));
    PyObject *new_pendings = PyList_New(channels);
    if (new_pendings == NULL) {
        Py_DECREF(frames);
        return NULL;
    }
    for (Py_ssize_t c = 0; c < channels; c++) {
        Piece *pieces;
        Py_ssize_t n = channel_pieces(
            PyList_GET_ITEM(pendings, c), PyList_GET_ITEM(all_runs, c), written, &pieces);
        if (n < 0) {
            goto error;
        }
        long long last = written;
        for (Py_ssize_t i = 0; i < n; i++) {
            long long end = pieces[i].start + pieces[i].count;
            if (end > last) {
                last = end;
            }
        }
        long long beyond = last - upto;
        if (beyond < 0) {
            beyond = 0;
        }
        PyObject *pending = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(beyond * 2));
        if (pending == NULL) {
            release_pieces(pieces, n);
            PyMem_Free(pieces);
            goto error;
        }
        int16_t *held = (int16_t *)PyBytes_AS_STRING(pending);
        memset(held, 0, (size_t)(beyond * 2));
        for (Py_ssize_t i = 0; i < n; i++) {
            const int16_t *samples = (const int16_t *)pieces[i].view.buf;
            long long start = pieces[i].start, count = pieces[i].count;
            if (start < written) { /* a packet too late for what is on disk */
                long long skip = written - start;
                if (skip > count) {
                    skip = count;
                }
                samples += skip;
                count -= skip;
                start = written;
            }
            long long end = start + count;
            for (long long k = start; k < end && k < upto; k++) {
                out[(k - written) * channels + c] = little_endian(samples[k - start]);
            }
            for (long long k = start > upto ? start : upto; k < end; k++) {
                held[k - upto] = samples[k - start];
            }
        }
        release_pieces(pieces, n);
        PyMem_Free(pieces);
        PyList_SET_ITEM(new_pendings, c, pending);
    }
    return Py_BuildValue("(NN)", frames, new_pendings);
error:
    Py_DECREF(frames);
    Py_DECREF(new_pendings);
    return NULL;
}
