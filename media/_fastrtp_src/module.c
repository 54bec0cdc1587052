/*
 * media._fastrtp: the per-packet work of the RTP path, in C.
 *
 * Files: stats.c, sender.c, relay.c, port.c and place.c hold the types and
 * the functions; fastrtp.h what they share; this file the module.
 *
 * The media relay is the one cost that grows with every packet of every
 * call; in Python a relayed packet cost about 20 us of CPU (two closures,
 * the RFC 3550 statistics, struct packing, the transport's sendto), which
 * put the engine's ceiling at about 50 calls a second with media. This
 * module does the same work in about a microsecond plus the system calls.
 * It holds no state of its own and starts no thread: every object is made,
 * configured and dropped by the Python code that owns the stream
 * (media/leg.py, media/_stats.py, media/bridge.py, media/_wavwriter.py), on
 * the event loop's thread (the recorder's functions on its writer thread),
 * with the GIL held throughout.
 *
 * Each type or function is the C twin of a Python reference implementation
 * that stays in the tree as the fallback and as the specification the tests
 * compare this one against (tests/test_fastrtp.py, tests/test_bridge.py):
 *
 *   ReceiverStatsCore  media._stats.PyReceiverStats: RFC 3550 A.1 sequence
 *                      validation, A.3 loss, A.8 jitter, bit for bit;
 *   SenderStateCore    media._stats.PySenderState: SSRC, sequence number,
 *                      timestamp and SR counts of an outgoing stream;
 *   Port               an RTP leg's socket, read on the loop's readiness
 *                      callback instead of through a datagram transport;
 *   Relay              media.bridge's Python closures for one direction: a
 *                      Port hands it the common packet from the latched peer
 *                      with no Python object made; forward() re-stamps,
 *                      maps the payload type, transcodes G.711 by table,
 *                      appends audio to the recording channel and sends;
 *   place(), mix()     media._wavwriter's placement of packets on a
 *                      recording's timeline and interleaving of channels.
 *
 * What the fast path does not take (another source, a new SSRC, a payload
 * type it was not built for, version or length trouble) goes to the leg's
 * full receive path in Python, exactly as the closures did.
 */

#include "fastrtp.h"

PyObject *str_active;
PyObject *str_ssrc;
PyObject *str_offset;

static PyMethodDef fastrtp_functions[] = {
    {"place", fast_place, METH_VARARGS,
     "place(items, table, origin, rate, tolerance, next_pos, next_ts) -> (runs, next_pos, "
     "next_ts): WavTimeline._runs for one channel's batch."},
    {"mix", fast_mix, METH_VARARGS,
     "mix(written, upto, pendings, runs) -> (frames, pendings): WavTimeline._emit's "
     "interleaving of every channel's samples."},
    {NULL}};

/* ------------------------------------------------------------------------
 * module
 */

static PyModuleDef fastrtp_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "media._fastrtp",
    .m_doc = "The per-packet work of the RTP path in C (see media/_fastrtp_src/module.c).",
    .m_size = -1,
    .m_methods = fastrtp_functions,
};

PyMODINIT_FUNC
PyInit__fastrtp(void)
{
    str_active = PyUnicode_InternFromString("active");
    str_ssrc = PyUnicode_InternFromString("ssrc");
    str_offset = PyUnicode_InternFromString("offset");
    if (!str_active || !str_ssrc || !str_offset) {
        return NULL;
    }
    if (PyType_Ready(&StatsType) < 0 || PyType_Ready(&SenderType) < 0 ||
        PyType_Ready(&RelayType) < 0 || PyType_Ready(&PortType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&fastrtp_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "ReceiverStatsCore", (PyObject *)&StatsType) < 0 ||
        PyModule_AddObjectRef(module, "SenderStateCore", (PyObject *)&SenderType) < 0 ||
        PyModule_AddObjectRef(module, "Relay", (PyObject *)&RelayType) < 0 ||
        PyModule_AddObjectRef(module, "Port", (PyObject *)&PortType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
