"""Pure logic: geometry, pixel conversion, decoders, NMS, Kalman filter, assignment, tracker.

Nothing under ``core`` does I/O: no zenoh, mmap, sockets or files, and no ctypes of its own. The
tracker and the decoders hand their per-frame loops to the native kernels (:mod:`edgenode.kernels`,
pure computation in C), passing the addresses of numpy arrays they own (``array.ctypes.data``).
Every function takes and returns plain values and numpy arrays, so tests drive it with crafted arrays.
"""
